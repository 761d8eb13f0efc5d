package targettest

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

// resize grows the history's disk to size and its model with zeros.
func (h *history) resize(t *testing.T, e *env, size int64) {
	t.Helper()
	if err := e.ResizeDisk(e.ctx, h.disk, size); err != nil {
		t.Fatalf("ResizeDisk(%s, %d): %v", h.disk, size, err)
	}
	h.live = append(h.live, make([]byte, size-int64(len(h.live)))...)
	if n, err := e.DiskSize(e.ctx, h.disk); err != nil || n != size {
		t.Fatalf("DiskSize after ResizeDisk(%d) = %d, %v", size, n, err)
	}
}

// testResize grows a disk twice under a chain of snapshots, each of which
// must keep its own size and bytes through later writes, a merge of a
// larger snapshot into a smaller one, and a copy.
func testResize(t *testing.T, e *env) {
	h := newHistory(t, e, 70)
	h.writes(t, e, 0)
	// Data up to the old end, where a fixed VHD keeps its footer.
	write(t, e, h.disk, h.live, h.rng, diskSize-64*1024, 64*1024)
	s1, s2 := e.name("s1"), e.name("s2")
	h.snapshot(t, e, s1)
	h.writes(t, e, 1) // pre-images for s1 on copy-on-write backends

	h.resize(t, e, 2*diskSize)
	h.check(t, e) // old bytes kept, new region zeros, s1 as it was
	wantErr(t, "ReadAt of a snapshot past its own size after the disk grew",
		e.ReadAt(e.ctx, h.disk, s1, make([]byte, 1024), diskSize-512), target.ErrInvalid)

	// Writes into the new region, right at the old end (the old footer's
	// place) and at the new end, and over the old end.
	write(t, e, h.disk, h.live, h.rng, diskSize, target.PageSize)
	write(t, e, h.disk, h.live, h.rng, 2*diskSize-128*1024, 128*1024)
	write(t, e, h.disk, h.live, h.rng, diskSize-8192, 16384)
	h.writes(t, e, 2)
	h.check(t, e)

	h.snapshot(t, e, s2) // the new size
	write(t, e, h.disk, h.live, h.rng, 0, target.MaxWrite)
	write(t, e, h.disk, h.live, h.rng, diskSize+target.MaxWrite/2, target.MaxWrite/2)
	h.resize(t, e, 3*diskSize)
	write(t, e, h.disk, h.live, h.rng, 3*diskSize-target.MaxWrite, target.MaxWrite)
	h.check(t, e)

	// s2 is larger than s1: what it hands s1 must stop at s1's size.
	h.deleteSnapshot(t, e, s2)
	h.check(t, e)

	dst := e.name("copy")
	if err := e.CopyFromSnapshot(e.ctx, h.disk, s1, dst); err != nil {
		t.Fatalf("CopyFromSnapshot of a snapshot taken before ResizeDisk: %v", err)
	}
	t.Cleanup(func() { _ = e.DeleteDisk(context.Background(), dst) })
	if n, err := e.DiskSize(e.ctx, dst); err != nil || n != diskSize {
		t.Fatalf("DiskSize of a copy of a snapshot from before ResizeDisk = %d, %v; want %d", n, err, diskSize)
	}
	checkEqual(t, e, dst, "", h.want[s1])
	checkRanges(t, e, dst, "", h.want[s1])
}

// testResizeRules: the same size is a no-op, shrinking and bad sizes are
// ErrInvalid, a missing disk is ErrNotFound, and writes past the end are
// refused until the disk grows.
func testResizeRules(t *testing.T, e *env) {
	h := newHistory(t, e, 71)
	h.writes(t, e, 0)
	write(t, e, h.disk, h.live, h.rng, diskSize-target.PageSize, target.PageSize)
	page := bytes.Repeat([]byte{0x5A}, target.PageSize)
	wantErr(t, "WritePages at the end before ResizeDisk", e.WritePages(e.ctx, h.disk, diskSize, page), target.ErrInvalid)

	for _, size := range []int64{0, -target.SizeUnit, diskSize + target.PageSize, 2*diskSize + 1} {
		wantErr(t, "ResizeDisk to a size not a positive multiple of SizeUnit", e.ResizeDisk(e.ctx, h.disk, size), target.ErrInvalid)
	}
	if err := e.ResizeDisk(e.ctx, h.disk, diskSize); err != nil {
		t.Fatalf("ResizeDisk to the same size: %v", err)
	}
	wantErr(t, "ResizeDisk to a smaller size", e.ResizeDisk(e.ctx, h.disk, diskSize-target.SizeUnit), target.ErrInvalid)
	wantErr(t, "ResizeDisk of a missing disk", e.ResizeDisk(e.ctx, e.name("missing"), diskSize), target.ErrNotFound)
	if n, err := e.DiskSize(e.ctx, h.disk); err != nil || n != diskSize {
		t.Fatalf("DiskSize after refused resizes = %d, %v; want %d", n, err, diskSize)
	}
	h.check(t, e)

	grown := int64(diskSize + target.SizeUnit)
	h.resize(t, e, grown)
	if err := e.ResizeDisk(e.ctx, h.disk, grown); err != nil { // a retry
		t.Fatalf("ResizeDisk again to the new size: %v", err)
	}
	wantErr(t, "ResizeDisk back to the old size", e.ResizeDisk(e.ctx, h.disk, diskSize), target.ErrInvalid)
	zeros := bytes.Repeat([]byte{0xA5}, target.SizeUnit)
	if err := e.ReadAt(e.ctx, h.disk, "", zeros, diskSize); err != nil || !bytes.Equal(zeros, make([]byte, target.SizeUnit)) {
		t.Fatalf("the grown region does not read as zeros (%v)", err)
	}
	if err := e.WritePages(e.ctx, h.disk, diskSize, page); err != nil {
		t.Fatalf("WritePages at the old end after ResizeDisk: %v", err)
	}
	copy(h.live[diskSize:], page)
	wantErr(t, "WritePages past the new end", e.WritePages(e.ctx, h.disk, grown, page), target.ErrInvalid)
	h.check(t, e)
	old := slices.Clone(h.live)
	if err := e.ResizeDisk(e.ctx, h.disk, grown); err != nil {
		t.Fatalf("ResizeDisk to the same size after writes: %v", err)
	}
	checkEqual(t, e, h.disk, "", old)
}
