package file

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestFixedFooterFields(t *testing.T) {
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f := fixedFooter(4<<20, id, now)
	be := binary.BigEndian
	checks := []struct {
		what      string
		got, want any
	}{
		{"cookie", string(f[0:8]), "conectix"},
		{"features", be.Uint32(f[8:]), uint32(2)},
		{"version", be.Uint32(f[12:]), uint32(0x00010000)},
		{"data offset", be.Uint64(f[16:]), ^uint64(0)},
		{"timestamp", be.Uint32(f[24:]), uint32(757382400)}, // 2024-01-01 - 2000-01-01 in seconds
		{"creator", string(f[28:32]), "win "},
		{"host", string(f[36:40]), "Wi2k"},
		{"original size", be.Uint64(f[40:]), uint64(4 << 20)},
		{"current size", be.Uint64(f[48:]), uint64(4 << 20)},
		{"geometry", be.Uint32(f[56:]), uint32(120<<16 | 4<<8 | 17)},
		{"type", be.Uint32(f[60:]), uint32(2)},
		{"id", [16]byte(f[68:84]), id},
		{"saved state and reserved", bytes.Count(f[84:], []byte{0}), footerSize - 84},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	var sum uint32
	for _, c := range f {
		sum += uint32(c)
	}
	// The stored checksum is ^(sum of the other bytes), so adding its
	// bytes back gives the sum of all 512 bytes.
	cs := be.Uint32(f[64:])
	other := sum - uint32(f[64]) - uint32(f[65]) - uint32(f[66]) - uint32(f[67])
	if cs != ^other {
		t.Errorf("checksum %#x, want %#x", cs, ^other)
	}
}

// Vectors worked by hand through the VHD specification's CHS algorithm.
func TestCHSGeometry(t *testing.T) {
	for _, c := range []struct {
		size       int64
		cyl, h, sp uint32
	}{
		{4 << 20, 120, 4, 17},       // 8192 sectors: 17 per track, 4 heads
		{100 << 20, 1003, 12, 17},   // heads from (12047+1023)/1024
		{1 << 30, 2080, 16, 63},     // too many cylinders at 17 and 31
		{127 << 30, 65278, 16, 255}, // past 65535*16*63 sectors
		{2 << 40, 65535, 16, 255},   // clamped to the maximum
	} {
		want := c.cyl<<16 | c.h<<8 | c.sp
		if got := chsGeometry(c.size); got != want {
			t.Errorf("chsGeometry(%d) = %d/%d/%d, want %d/%d/%d", c.size,
				got>>16, got>>8&0xff, got&0xff, c.cyl, c.h, c.sp)
		}
	}
}

// requireTool returns the tool's path; it fails under CI and skips
// elsewhere when the tool is missing.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required under CI: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// TestQemuReadsDisk checks that qemu-img sees the disk file as a fixed VHD
// of the right virtual size holding the bytes written through the target.
func TestQemuReadsDisk(t *testing.T) {
	qemu := requireTool(t, "qemu-img")
	ctx := context.Background()
	tg := newTarget(t)
	const size = 6 << 20
	if err := tg.CreateDisk(ctx, "vm1/disk0", size); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	for i := range 1 << 20 {
		want[size/2+i] = byte(i*7 + 1)
	}
	if err := tg.WritePages(ctx, "vm1/disk0", size/2, want[size/2:size/2+1<<20]); err != nil {
		t.Fatal(err)
	}
	path := tg.vhdPath("vm1%2Fdisk0")
	out, err := exec.Command(qemu, "info", "--output=json", "-f", "vpc", path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	var info struct {
		VirtualSize int64  `json:"virtual-size"`
		Format      string `json:"format"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("qemu-img info output %q: %v", out, err)
	}
	if info.VirtualSize != size || info.Format != "vpc" {
		t.Fatalf("qemu-img info: virtual size %d format %q, want %d vpc", info.VirtualSize, info.Format, size)
	}
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command(qemu, "convert", "-f", "vpc", "-O", "raw", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	got, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("qemu-img convert gave %d bytes that differ from the %d written", len(got), len(want))
	}
}
