package file

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

const crashSize = 2 << 20

var errCrash = errors.New("simulated crash")

// fixture is a disk with a model of its content and of each snapshot.
type fixture struct {
	dir   string
	tg    *Target
	live  []byte
	snaps map[string][]byte
	rng   *rand.Rand
}

func newFixture(t *testing.T) *fixture { return newFixtureSize(t, crashSize) }

func newFixtureSize(t *testing.T, size int64) *fixture {
	f := &fixture{dir: t.TempDir(), live: make([]byte, size), snaps: map[string][]byte{},
		rng: rand.New(rand.NewPCG(7, 7))}
	f.reopen(t)
	if err := f.tg.CreateDisk(context.Background(), "d", size); err != nil {
		t.Fatal(err)
	}
	return f
}

// reopen drops every in-memory cache, as a new process would start.
func (f *fixture) reopen(t *testing.T) {
	t.Helper()
	tg, err := New(f.dir)
	if err != nil {
		t.Fatalf("New after a crash: %v", err)
	}
	f.tg = tg
}

func (f *fixture) data(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(f.rng.Uint32() | 1)
	}
	return p
}

func (f *fixture) write(t *testing.T, off int64, p []byte) error {
	t.Helper()
	err := f.tg.WritePages(context.Background(), "d", off, p)
	if err == nil {
		copy(f.live[off:], p)
	}
	return err
}

func (f *fixture) writeBatch(t *testing.T, ws []target.Write) error {
	t.Helper()
	err := f.tg.WriteBatch(context.Background(), "d", ws)
	if err == nil {
		for _, w := range ws {
			copy(f.live[w.Off:], w.P)
		}
	}
	return err
}

func (f *fixture) snapshot(t *testing.T, name string) {
	t.Helper()
	if err := f.tg.Snapshot(context.Background(), "d", name); err != nil {
		t.Fatal(err)
	}
	f.snaps[name] = slices.Clone(f.live)
}

func (f *fixture) check(t *testing.T) {
	t.Helper()
	for name, want := range f.snaps {
		got := make([]byte, len(want))
		if err := f.tg.ReadAt(context.Background(), "d", name, got, 0); err != nil {
			t.Fatalf("ReadAt snapshot %s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("snapshot %s reads other bytes than it was taken with", name)
		}
	}
	got := make([]byte, len(f.live))
	if err := f.tg.ReadAt(context.Background(), "d", "", got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.live) {
		t.Fatal("the disk reads other bytes than were written")
	}
}

func setHook(t *testing.T, stage string) {
	crashHook = func(s string) error {
		if s == stage {
			return errCrash
		}
		return nil
	}
	t.Cleanup(func() { crashHook = nil })
}

// A crash after the pre-images reach the snapshot (synced or not, indexed
// or not) but before the disk is written leaves every snapshot right, and
// the retried write goes through.
func TestCrashBetweenPreImageAndWrite(t *testing.T) {
	for _, stage := range []string{"pre-data", "pre-index"} {
		t.Run(stage, func(t *testing.T) {
			f := newFixture(t)
			if err := f.write(t, 0, f.data(256<<10)); err != nil {
				t.Fatal(err)
			}
			f.snapshot(t, "s1")
			setHook(t, stage)
			p := f.data(100 << 10)
			if err := f.write(t, 32<<10, p); !errors.Is(err, errCrash) {
				t.Fatalf("write with a crash at %s: %v", stage, err)
			}
			crashHook = nil
			f.reopen(t)
			f.check(t) // the disk still holds the old bytes: the write never ran
			if err := f.write(t, 32<<10, p); err != nil {
				t.Fatalf("retried write: %v", err)
			}
			f.check(t)
			f.snapshot(t, "s2")
			if err := f.write(t, 0, f.data(crashSize)); err != nil {
				t.Fatal(err)
			}
			f.check(t)
		})
	}
}

// A batch stopped after its pre-images reach the newest snapshot (synced or
// not, indexed or not) leaves the disk and every snapshot as they were,
// and the retried batch goes through. The batch spans several MiB: whole
// and partial granules, some already saved by an earlier write, and small
// writes in granules of their own.
func TestCrashBatchBetweenPreImageAndWrite(t *testing.T) {
	const size = 8 << 20
	for _, stage := range []string{"pre-data", "pre-index"} {
		t.Run(stage, func(t *testing.T) {
			f := newFixtureSize(t, size)
			for off := int64(0); off < size; off += target.MaxWrite {
				if err := f.write(t, off, f.data(target.MaxWrite)); err != nil {
					t.Fatal(err)
				}
			}
			f.snapshot(t, "s1")
			if err := f.write(t, 3*granule, f.data(2*granule)); err != nil {
				t.Fatal(err)
			}
			f.snapshot(t, "s2")
			for _, g := range []int64{40, 120} { // saved in s2 before the batch
				if err := f.write(t, g*granule+4096, f.data(4096)); err != nil {
					t.Fatal(err)
				}
			}
			ws := []target.Write{
				{Off: 6<<20 + 32<<10, P: f.data(1 << 20)}, // partial granules at both ends
				{Off: 0, P: f.data(target.PageSize)},
				{Off: granule - target.PageSize, P: f.data(target.PageSize)},   // the granule of the write at 0
				{Off: 2 << 20, P: f.data(target.MaxWrite)},                     // 64 whole granules, one saved in s2
				{Off: 3*granule + target.PageSize, P: f.data(target.PageSize)}, // saved in s1, not in s2
				{Off: 120 * granule, P: f.data(target.PageSize)},               // saved in s2
				{Off: size - target.PageSize, P: f.data(target.PageSize)},
			}
			setHook(t, stage)
			if err := f.writeBatch(t, ws); !errors.Is(err, errCrash) {
				t.Fatalf("batch with a crash at %s: %v", stage, err)
			}
			crashHook = nil
			f.reopen(t)
			f.check(t) // the disk still holds the old bytes: the batch never wrote
			if err := f.writeBatch(t, ws); err != nil {
				t.Fatalf("retried batch: %v", err)
			}
			f.check(t)
			f.reopen(t)
			f.check(t)
			if err := f.tg.DeleteSnapshot(context.Background(), "d", "s1"); err != nil {
				t.Fatal(err)
			}
			delete(f.snaps, "s1")
			f.check(t)
			f.snapshot(t, "s3")
			if err := f.writeBatch(t, ws); err != nil { // the same writes again, fresh bytes
				t.Fatal(err)
			}
			f.check(t)
		})
	}
}

// A torn append (a partial record after the last good one) is ignored by
// readers and cut off before the next append.
func TestTornIndexTail(t *testing.T) {
	f := newFixture(t)
	if err := f.write(t, 0, f.data(crashSize)); err != nil {
		t.Fatal(err)
	}
	f.snapshot(t, "s1")
	if err := f.write(t, 0, f.data(64<<10)); err != nil {
		t.Fatal(err)
	}
	index := f.indexPath(t, "s1")
	appendFile(t, index, []byte{0x55, 0x66, 0x77, 0x01, 0x02, 0x03, 0x04}) // 7 of 16 bytes
	f.reopen(t)
	f.check(t)
	if err := f.write(t, 1<<20, f.data(64<<10)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(index); err != nil || fi.Size() != indexHeader+2*recordSize {
		t.Fatalf("index after repair and append: %v, %v bytes; want %d", err, fi.Size(), indexHeader+2*recordSize)
	}
	f.reopen(t)
	f.check(t)

	// A damaged record before a good one is not a torn tail: refuse.
	b, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	b[indexHeader] ^= 0xff
	if err := os.WriteFile(index, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	err = f.tg.ReadAt(context.Background(), "d", "s1", make([]byte, 512), 0)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadAt with a damaged index record: %v, want ErrCorrupt", err)
	}
}

// An interrupted DeleteSnapshot leaves both snapshots readable and is
// finished by the next call.
func TestCrashDuringMerge(t *testing.T) {
	f := newFixture(t)
	if err := f.write(t, 0, f.data(crashSize)); err != nil {
		t.Fatal(err)
	}
	f.snapshot(t, "s1")
	if err := f.write(t, 0, f.data(512<<10)); err != nil {
		t.Fatal(err)
	}
	f.snapshot(t, "s2")
	if err := f.write(t, 0, f.data(crashSize)); err != nil {
		t.Fatal(err)
	}
	old := mergeBatch
	mergeBatch = 2
	t.Cleanup(func() { mergeBatch = old })
	setHook(t, "merge-batch")
	if err := f.tg.DeleteSnapshot(context.Background(), "d", "s2"); !errors.Is(err, errCrash) {
		t.Fatalf("DeleteSnapshot with a crash: %v", err)
	}
	crashHook = nil
	f.reopen(t)
	f.check(t)
	if err := f.tg.DeleteSnapshot(context.Background(), "d", "s2"); err != nil {
		t.Fatal(err)
	}
	delete(f.snaps, "s2")
	f.check(t)
	if err := f.write(t, 0, f.data(crashSize)); err != nil {
		t.Fatal(err)
	}
	f.check(t)
}

func (f *fixture) indexPath(t *testing.T, snap string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(f.dir, disksDir, "d.snap", "*-"+snap, "index"))
	if err != nil || len(m) != 1 {
		t.Fatalf("index of %s: %v %v", snap, m, err)
	}
	return m[0]
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Write(b); err != nil {
		t.Fatal(err)
	}
}
