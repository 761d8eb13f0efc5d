package azblob

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestCHS(t *testing.T) {
	// Worked by hand from the VHD spec's algorithm.
	for _, c := range []struct {
		size    int64
		cyl     uint16
		h, spt  uint8
		comment string
	}{
		{1 << 20, 30, 4, 17, "2048 sectors: 17 sectors, 4 heads minimum"},
		{2 << 30, 4161, 16, 63, "needs 63 sectors per track"},
		{40 << 30, 20560, 16, 255, "past 65535*16*63 sectors"},
		{4 << 40, 65535, 16, 255, "capped at 65535*16*255 sectors"},
	} {
		cyl, h, spt := chs(c.size)
		if cyl != c.cyl || h != c.h || spt != c.spt {
			t.Errorf("chs(%d) = %d/%d/%d, want %d/%d/%d (%s)", c.size, cyl, h, spt, c.cyl, c.h, c.spt, c.comment)
		}
	}
}

func TestFixedFooterFields(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	const size = 3 << 20
	f := fixedFooter(size, now, id)
	be := binary.BigEndian
	if len(f) != 512 || string(f[:8]) != "conectix" || string(f[28:32]) != "win " {
		t.Fatalf("footer starts %q, creator %q, length %d", f[:8], f[28:32], len(f))
	}
	if be.Uint64(f[16:]) != ^uint64(0) || be.Uint32(f[60:]) != 2 {
		t.Errorf("data offset %#x, disk type %d; want none and 2 (fixed)", be.Uint64(f[16:]), be.Uint32(f[60:]))
	}
	if be.Uint64(f[40:]) != size || be.Uint64(f[48:]) != size {
		t.Errorf("sizes %d/%d, want %d", be.Uint64(f[40:]), be.Uint64(f[48:]), size)
	}
	if got, want := be.Uint32(f[24:]), uint32(now.Sub(vhdEpoch).Seconds()); got != want {
		t.Errorf("timestamp %d, want %d", got, want)
	}
	if !bytes.Equal(f[68:84], id[:]) {
		t.Errorf("unique id %x, want %x", f[68:84], id)
	}
	// The checksum makes the byte sum (checksum field excluded) plus the
	// checksum all ones.
	var sum uint32
	for i, b := range f {
		if i < 64 || i >= 68 {
			sum += uint32(b)
		}
	}
	if sum+be.Uint32(f[64:]) != ^uint32(0) {
		t.Errorf("checksum %#x does not complement the byte sum %#x", be.Uint32(f[64:]), sum)
	}
	if !bytes.Equal(f[85:], make([]byte, 512-85)) {
		t.Error("reserved bytes are not zero")
	}
	a, b := newFooter(size), newFooter(size)
	if bytes.Equal(a[68:84], b[68:84]) {
		t.Error("two new footers share a unique id")
	}
}

// qemuVirtualSize asks qemu-img what virtual size it reads from a VHD file.
func qemuVirtualSize(t *testing.T, path string) int64 {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qemu-img not found under CI: install qemu-utils")
		}
		t.Skip("qemu-img not found: install qemu-utils to cross-check VHD footers")
	}
	out, err := exec.Command("qemu-img", "info", "--output=json", "-f", "vpc", path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v\n%s", path, err, out)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("qemu-img info output: %v\n%s", err, out)
	}
	return info.VirtualSize
}

func TestFooterQemu(t *testing.T) {
	const size = 5 << 20
	path := filepath.Join(t.TempDir(), "d.vhd")
	if err := os.WriteFile(path, append(make([]byte, size), newFooter(size)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := qemuVirtualSize(t, path); got != size {
		t.Fatalf("qemu-img reads virtual size %d, want %d", got, size)
	}
}
