package targettest

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

func testCopyFromSnapshot(t *testing.T, e *env) {
	h := newHistory(t, e, 40)
	h.writes(t, e, 0)
	s1, s2 := e.name("s1"), e.name("s2")
	h.snapshot(t, e, s1)
	h.writes(t, e, 1)
	h.snapshot(t, e, s2)
	h.writes(t, e, 2)

	// Copy the older snapshot: its content comes from pre-images or
	// history on copy-on-write backends.
	dst := e.name("copy")
	if err := e.CopyFromSnapshot(e.ctx, h.disk, s1, dst); err != nil {
		t.Fatalf("CopyFromSnapshot: %v", err)
	}
	t.Cleanup(func() { _ = e.DeleteDisk(context.Background(), dst) })
	if n, err := e.DiskSize(e.ctx, dst); err != nil || n != diskSize {
		t.Fatalf("DiskSize of the copy = %d, %v; want %d", n, err, diskSize)
	}
	copyModel := slices.Clone(h.want[s1])
	checkEqual(t, e, dst, "", copyModel)
	checkRanges(t, e, dst, "", copyModel)
	snaps, err := e.Snapshots(e.ctx, dst)
	if err != nil {
		t.Fatalf("Snapshots of the copy: %v", err)
	}
	checkList(t, "Snapshots of the copy", snaps, nil)

	// Writes on either side stay on that side.
	rng := mrand.New(mrand.NewPCG(41, 42))
	write(t, e, dst, copyModel, rng, 0, 128*1024)
	h.writes(t, e, 3)
	checkEqual(t, e, dst, "", copyModel)
	h.check(t, e)

	// The copy outlives its source.
	h.deleteSnapshot(t, e, s1)
	if err := e.DeleteDisk(e.ctx, h.disk); err != nil {
		t.Fatalf("DeleteDisk of the source: %v", err)
	}
	checkEqual(t, e, dst, "", copyModel)
}

func testCopyFromSnapshotErrors(t *testing.T, e *env) {
	h := newHistory(t, e, 50)
	h.writes(t, e, 0)
	s := e.name("s")
	h.snapshot(t, e, s)
	dst := e.name("dst")
	mustCreate(t, e, dst, 2*diskSize)
	wantErr(t, "CopyFromSnapshot onto an existing disk", e.CopyFromSnapshot(e.ctx, h.disk, s, dst), target.ErrExists)
	checkEqual(t, e, dst, "", make([]byte, 2*diskSize)) // untouched
	wantErr(t, "CopyFromSnapshot of a missing snapshot",
		e.CopyFromSnapshot(e.ctx, h.disk, e.name("nosnap"), e.name("dst2")), target.ErrNotFound)
	wantErr(t, "CopyFromSnapshot of a missing disk",
		e.CopyFromSnapshot(e.ctx, e.name("missing"), s, e.name("dst3")), target.ErrNotFound)
	for _, d := range []string{e.name("dst2"), e.name("dst3")} {
		_, err := e.DiskSize(e.ctx, d)
		wantErr(t, "DiskSize of a failed copy's destination", err, target.ErrNotFound)
	}
}

// testConcurrentWrites writes interleaved 4 KiB pages from many goroutines
// (neighbours share any larger block a backend uses) while a snapshot taken
// before them must keep the old content.
func testConcurrentWrites(t *testing.T, e *env) {
	h := newHistory(t, e, 60)
	h.writes(t, e, 0)
	s := e.name("s")
	h.snapshot(t, e, s)

	const workers, pages, page = 8, 16, 4096
	bufs := make([][]byte, workers*pages)
	for i := range bufs {
		bufs[i] = make([]byte, page)
		for j := range bufs[i] {
			bufs[i][j] = byte(h.rng.Uint32())
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for k := range pages {
				i := k*workers + w // neighbouring pages belong to different workers
				if err := e.WritePages(e.ctx, h.disk, int64(i)*page, bufs[i]); err != nil {
					errs <- fmt.Errorf("worker %d WritePages(off %d): %w", w, i*page, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, b := range bufs {
		copy(h.live[i*page:], b)
	}
	h.check(t, e)
}
