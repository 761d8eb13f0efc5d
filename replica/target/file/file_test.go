package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/targettest"
)

func newTarget(t *testing.T) *Target {
	t.Helper()
	tg, err := New(t.TempDir())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tg
}

func TestConformance(t *testing.T) {
	targettest.Run(t, func(t *testing.T) target.Target { return newTarget(t) })
}

// TestNewConcurrent opens one new directory from many goroutines, as
// parallel asr runs may: all must agree on one layout file.
func TestNewConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "target")
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := New(dir)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent New: %v", err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 3 {
		t.Fatalf("target directory holds %v (%v), want the layout file, disks and objects", ents, err)
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{"file://" + dir, "file:" + dir, "file://localhost" + dir} {
		tg, err := target.Open(ctx, u, target.Config{})
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		if got := tg.(*Target).Dir(); got != dir {
			t.Fatalf("Open(%s) dir %q, want %q", u, got, dir)
		}
	}
	for _, u := range []string{"file://relative/path", "file:relative", "file://host/srv/asr", "file://" + dir + "?x=1"} {
		if _, err := target.Open(ctx, u, target.Config{}); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("Open(%s): %v, want ErrInvalid", u, err)
		}
	}
}

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir); !errors.Is(err, ErrLayout) {
		t.Fatalf("New on a non-empty directory: %v, want ErrLayout", err)
	}
	dir = t.TempDir()
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, layoutFile))
	if err != nil || string(b) != "{\"layout\":1}\n" {
		t.Fatalf("layout file %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(dir, layoutFile), []byte(`{"layout":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir); !errors.Is(err, ErrLayout) {
		t.Fatalf("New on layout 2: %v, want ErrLayout", err)
	}
}

func TestNames(t *testing.T) {
	ctx := context.Background()
	tg := newTarget(t)
	for _, d := range []string{"", ".hidden", "a//b", "a/../b", "a b", "ä", "/abs", "a/", strings.Repeat("x", 201)} {
		if err := tg.CreateDisk(ctx, d, 1<<20); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("CreateDisk(%q): %v, want ErrInvalid", d, err)
		}
	}
	if err := tg.CreateDisk(ctx, "vm-1/disk_0.x", 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := tg.Snapshot(ctx, "vm-1/disk_0.x", "../s"); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("Snapshot ../s: %v, want ErrInvalid", err)
	}
	for _, k := range []string{"", "/abs", "../x", "a/../../x", "a//b", "a/./b", "a/", tmpPrefix + "x"} {
		if err := tg.PutObject(ctx, k, []byte("x")); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("PutObject(%q): %v, want ErrInvalid", k, err)
		}
		if _, err := tg.GetObject(ctx, k); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("GetObject(%q): %v, want ErrInvalid", k, err)
		}
	}
	// An object where another key needs a folder is refused, not lost.
	if err := tg.PutObject(ctx, "a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := tg.PutObject(ctx, "a/b", []byte("y")); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("PutObject(a/b) over object a: %v, want ErrInvalid", err)
	}
	ents, _ := os.ReadDir(filepath.Join(tg.Dir(), objectsDir))
	if len(ents) != 1 {
		t.Errorf("objects/ holds %d entries after a refused put, want 1 (no temporary file left)", len(ents))
	}
}

// TestSparse checks that disks, snapshots and copies cost what they hold:
// a new disk and a snapshot allocate nothing, a small write preserves one
// granule.
func TestSparse(t *testing.T) {
	ctx := context.Background()
	tg := newTarget(t)
	const size = 64 << 20
	if err := tg.CreateDisk(ctx, "d", size); err != nil {
		t.Fatal(err)
	}
	if err := tg.WritePages(ctx, "d", 0, bytes.Repeat([]byte{1}, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := tg.Snapshot(ctx, "d", "s"); err != nil {
		t.Fatal(err)
	}
	if err := tg.WritePages(ctx, "d", 4096, bytes.Repeat([]byte{2}, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := tg.WritePages(ctx, "d", 32<<20, bytes.Repeat([]byte{3}, 4096)); err != nil {
		t.Fatal(err) // the granule was a hole: its pre-image is a hole too
	}
	pre, _ := filepath.Glob(filepath.Join(tg.Dir(), disksDir, "d.snap", "*-s", "pre"))
	if len(pre) != 1 {
		t.Fatalf("pre-image files %v", pre)
	}
	if n := allocated(t, pre[0]); n != granule {
		t.Errorf("pre-image file allocates %d bytes, want one granule (%d)", n, granule)
	}
	rs, err := tg.Ranges(ctx, "d", "s")
	if err != nil || len(rs) != 1 || rs[0] != (target.Extent{Off: 0, Len: 1 << 20}) {
		t.Errorf("Ranges of the snapshot = %v, %v; want [{0 1MiB}]", rs, err)
	}
	if err := tg.CopyFromSnapshot(ctx, "d", "s", "c"); err != nil {
		t.Fatal(err)
	}
	if n := allocated(t, tg.vhdPath("c")); n > 1<<20+4096 {
		t.Errorf("copy allocates %d bytes, want about 1 MiB", n)
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestTwoHandles runs a writer and a snapshot reader on two Targets over
// one directory, as two processes would: the reader must never see a write
// made after its snapshot, through stale caches or a race with preserve.
func TestTwoHandles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, r := newAt(t, dir), newAt(t, dir)
	const size = 2 << 20
	if err := w.CreateDisk(ctx, "d", size); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, 4096) }
	for round := byte(1); round <= 4; round++ {
		// Every page of the disk holds the round number when the snapshot
		// is taken; later writes hold other numbers.
		for off := int64(0); off < size; off += target.MaxWrite / 2 {
			if err := w.WritePages(ctx, "d", off, bytes.Repeat([]byte{round}, target.MaxWrite/2)); err != nil {
				t.Fatal(err)
			}
		}
		snap := fmt.Sprintf("s%d", round)
		if err := w.Snapshot(ctx, "d", snap); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			for i := 0; i < 64; i++ {
				off := rng.Int64N(size/4096) * 4096
				if err := w.WritePages(ctx, "d", off, page(100+round)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for i := 0; i < 8; i++ {
			got := make([]byte, size)
			if err := r.ReadAt(ctx, "d", snap, got, 0); err != nil {
				t.Fatal(err)
			}
			if j := bytes.IndexFunc(got, func(c rune) bool { return c != rune(round) }); j >= 0 {
				t.Fatalf("round %d: snapshot byte %d is %d while the writer runs", round, j, got[j])
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if round == 3 { // the reader's cached indexes must follow a deletion
			if err := w.DeleteSnapshot(ctx, "d", "s2"); err != nil {
				t.Fatal(err)
			}
		}
	}
	names, err := r.Snapshots(ctx, "d")
	if err != nil || fmt.Sprint(names) != "[s1 s3 s4]" {
		t.Fatalf("Snapshots from the other handle = %v, %v", names, err)
	}
}

func newAt(t *testing.T, dir string) *Target {
	t.Helper()
	tg, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}
