package file

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/asr-project/asr/replica/target/internal/footer"
)

// tail reads the footer at the end of a disk file.
func tail(t *testing.T, tg *Target, enc string) []byte {
	t.Helper()
	b, err := os.ReadFile(tg.vhdPath(enc))
	if err != nil || len(b) < footerSize {
		t.Fatalf("read disk file: %v (%d bytes)", err, len(b))
	}
	return b[len(b)-footerSize:]
}

// TestResizeFooter: a grown disk file ends in the footer for its new size,
// with the disk's unique id, and holds nothing else past the data.
func TestResizeFooter(t *testing.T) {
	ctx := context.Background()
	tg := newTarget(t)
	const from, to = 2 << 20, 5 << 20
	if err := tg.CreateDisk(ctx, "d", from); err != nil {
		t.Fatal(err)
	}
	before := tail(t, tg, "d")
	if err := tg.ResizeDisk(ctx, "d", to); err != nil {
		t.Fatal(err)
	}
	after := tail(t, tg, "d")
	if !footer.Fits(after, to) || !bytes.Equal(after[68:84], before[68:84]) {
		t.Fatalf("footer after resize: fits %v, same unique id %v", footer.Fits(after, to), bytes.Equal(after[68:84], before[68:84]))
	}
	if fi, err := os.Stat(tg.vhdPath("d")); err != nil || fi.Size() != to+footerSize {
		t.Fatalf("disk file after resize: %v, want %d bytes", err, to+footerSize)
	}
	got := make([]byte, to-from)
	if err := tg.ReadAt(ctx, "d", "", got, from); err != nil || !allZero(got) {
		t.Fatalf("the grown region is not zeros (%v): the old footer shows through", err)
	}
}

// A resize cut short after the old footer is cleared (the old size, no
// footer) or after the file is extended (the new size, no footer) keeps
// every byte and snapshot, shows zeros in the new region, and is finished
// by the retried call.
func TestCrashDuringResize(t *testing.T) {
	const grown = 2 * crashSize
	for stage, wantSize := range map[string]int64{"resize-cleared": crashSize, "resize-extended": grown} {
		t.Run(stage, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			if err := f.write(t, 0, f.data(crashSize)); err != nil { // up to the old end
				t.Fatal(err)
			}
			f.snapshot(t, "s1")
			if err := f.write(t, crashSize-192<<10, f.data(128<<10)); err != nil {
				t.Fatal(err)
			}
			setHook(t, stage)
			if err := f.tg.ResizeDisk(ctx, "d", grown); !errors.Is(err, errCrash) {
				t.Fatalf("ResizeDisk with a crash at %s: %v", stage, err)
			}
			crashHook = nil
			f.reopen(t)
			if n, err := f.tg.DiskSize(ctx, "d"); err != nil || n != wantSize {
				t.Fatalf("DiskSize after the crash = %d, %v; want %d", n, err, wantSize)
			}
			f.check(t)
			checkZeros(t, f.tg, crashSize, wantSize)

			retries := []int64{grown, grown} // the second is the no-op
			if wantSize == grown {
				retries = []int64{grown} // what a caller seeing the new size does
			}
			for _, size := range retries {
				if err := f.tg.ResizeDisk(ctx, "d", size); err != nil {
					t.Fatalf("retried ResizeDisk(%d): %v", size, err)
				}
			}
			if ft := tail(t, f.tg, "d"); !footer.Fits(ft, grown) {
				t.Fatal("the retried resize left no footer for the new size")
			}
			f.check(t)
			checkZeros(t, f.tg, crashSize, grown)
			if err := f.write(t, 0, f.data(crashSize)); err != nil { // still preserves for s1
				t.Fatal(err)
			}
			if err := f.tg.WritePages(ctx, "d", crashSize, f.data(64<<10)); err != nil {
				t.Fatal(err)
			}
			f.check(t)
		})
	}
}

func checkZeros(t *testing.T, tg *Target, from, to int64) {
	t.Helper()
	if to <= from {
		return
	}
	p := bytes.Repeat([]byte{0xA5}, int(to-from))
	if err := tg.ReadAt(context.Background(), "d", "", p, from); err != nil || !allZero(p) {
		t.Fatalf("[%d, %d) of the disk is not zeros (%v)", from, to, err)
	}
}
