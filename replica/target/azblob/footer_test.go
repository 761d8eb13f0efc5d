package azblob

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestNewFooter(t *testing.T) {
	const size = 3 << 20
	f := newFooter(size)
	be := binary.BigEndian
	if len(f) != footerSize || string(f[:8]) != "conectix" || string(f[28:32]) != "win " {
		t.Fatalf("footer starts %q, creator %q, length %d", f[:8], f[28:32], len(f))
	}
	if be.Uint64(f[48:]) != size || be.Uint32(f[60:]) != 2 {
		t.Errorf("current size %d, disk type %d; want %d and 2 (fixed)", be.Uint64(f[48:]), be.Uint32(f[60:]), size)
	}
	if g := newFooter(size); bytes.Equal(f[68:84], g[68:84]) {
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
