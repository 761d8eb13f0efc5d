package file

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/asr-project/asr/replica/vhd/qemutest"
)

// TestQemuReadsDisk checks that qemu-img sees the disk file as a fixed VHD
// of the right virtual size holding the bytes written through the target.
func TestQemuReadsDisk(t *testing.T) {
	qemu := qemutest.Need(t, "qemu-img")
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
	qemuInfo(t, qemu, path, size)
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

// qemuInfo checks that qemu-img reads path as a VHD of the virtual size.
func qemuInfo(t *testing.T, qemu, path string, size int64) {
	t.Helper()
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
}

// TestQemuReadsGrownDisk checks that after ResizeDisk qemu-img sees a VHD
// of the new size whose bytes (qemu-img compare against a raw model) are
// the old data, zeros, and what was written into the new region.
func TestQemuReadsGrownDisk(t *testing.T) {
	qemu := qemutest.Need(t, "qemu-img")
	ctx := context.Background()
	tg := newTarget(t)
	const from, to = 3 << 20, 7 << 20
	if err := tg.CreateDisk(ctx, "d", from); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, to)
	for i := from - 1<<20; i < from; i++ {
		want[i] = byte(i*5 + 3)
	}
	if err := tg.WritePages(ctx, "d", from-1<<20, want[from-1<<20:from]); err != nil {
		t.Fatal(err)
	}
	if err := tg.Snapshot(ctx, "d", "before"); err != nil {
		t.Fatal(err)
	}
	if err := tg.ResizeDisk(ctx, "d", to); err != nil {
		t.Fatal(err)
	}
	for i := to - 4096; i < to; i++ {
		want[i] = byte(i*3 + 1)
	}
	if err := tg.WritePages(ctx, "d", to-4096, want[to-4096:]); err != nil {
		t.Fatal(err)
	}
	path := tg.vhdPath("d")
	qemuInfo(t, qemu, path, to)
	raw := filepath.Join(t.TempDir(), "want.raw")
	if err := os.WriteFile(raw, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(qemu, "compare", "-f", "vpc", "-F", "raw", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare of the grown disk with its model: %v\n%s", err, out)
	}
}
