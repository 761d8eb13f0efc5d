package file

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestWriteSnapshotFileIsTheSnapshot: for old and new snapshots, with
// pre-images, a grown disk and writes going on meanwhile, the file
// WriteSnapshotFile writes reads exactly as ReadAt of the snapshot, and a
// range never written stays a hole.
func TestWriteSnapshotFileIsTheSnapshot(t *testing.T) {
	ctx := context.Background()
	tg := newTarget(t)
	const size = 8 << 20
	if err := tg.CreateDisk(ctx, "d", size); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	write := func(off, n int64) {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.IntN(255) + 1)
		}
		if err := tg.WritePages(ctx, "d", off, p); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 1<<20)
	tg.Snapshot(ctx, "d", "s1")
	write(512<<10, 1<<20) // over s1's data: pre-images
	write(6<<20, 64<<10)
	tg.Snapshot(ctx, "d", "s2")
	if err := tg.ResizeDisk(ctx, "d", 10<<20); err != nil {
		t.Fatal(err)
	}
	write(9<<20, 512<<10)
	tg.Snapshot(ctx, "d", "s3")

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // replication goes on
		defer wg.Done()
		w := rand.New(rand.NewPCG(5, 6))
		for {
			select {
			case <-stop:
				return
			default:
			}
			p := bytes.Repeat([]byte{byte(w.IntN(255) + 1)}, 64<<10)
			tg.WritePages(ctx, "d", int64(w.IntN(160))*64<<10, p)
		}
	}()
	for _, snap := range []string{"s1", "s2", "s3"} {
		want := make([]byte, sizeOf(t, tg, snap))
		if err := tg.ReadAt(ctx, "d", snap, want, 0); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), snap)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(int64(len(want)))
		if _, err := tg.WriteSnapshotFile(ctx, "d", snap, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, want) {
			t.Errorf("snapshot %s: the file differs from ReadAt", snap)
		}
		if snap == "s1" {
			f, _ := os.Open(path)
			exts, err := dataRanges(f, int64(len(want)))
			f.Close()
			if err != nil || len(exts) == 0 || exts[len(exts)-1].Off+exts[len(exts)-1].Len > 2<<20 {
				t.Errorf("s1 holds data only below 1 MiB (a block more at most), the file has %v (%v)", exts, err)
			}
		}
	}
	close(stop)
	wg.Wait()
}

func sizeOf(t *testing.T, tg *Target, snap string) int64 {
	h, size, _, _, err := tg.open(context.Background(), "d", snap)
	if err != nil {
		t.Fatal(err)
	}
	h.unlock()
	return size
}
