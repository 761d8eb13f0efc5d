package hrl

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fixedNow is a clock for tests that pin time fields.
var fixedNow = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func clock() time.Time { return fixedNow }

// write is one logged write for tests.
type write struct {
	off  int64
	data []byte
}

// buildLog writes ws into a new closed log at dir/name and returns its path
// and writer ID.
func buildLog(t testing.TB, dir, name string, opt Options, ws []write) (string, uuid.UUID) {
	t.Helper()
	if opt.Now == nil {
		opt.Now = clock
	}
	path := filepath.Join(dir, name)
	w, err := Create(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ws {
		if err := w.Write(x.off, x.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path, w.ID()
}

// smallWrites returns n writes of size bytes each at distinct offsets,
// filled from seed.
func smallWrites(n, size int, seed uint64) []write {
	rng := rand.New(rand.NewPCG(seed, 7))
	ws := make([]write, n)
	for i := range ws {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		ws[i] = write{off: int64(i) * 4096, data: b}
	}
	return ws
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// naiveChecksum is the spec's rule written the slow, obvious way, so the
// tests do not trust the package's own checksum code.
func naiveChecksum(b []byte, skip int) uint32 {
	var s uint32
	for i, v := range b {
		if i >= skip && i < skip+4 {
			continue
		}
		s += uint32(v)
	}
	return ^s
}

// applyExtents copies each extent's data from its log file into disk.
func applyExtents(t testing.TB, logs []*Log, xs []Extent, disk []byte) {
	t.Helper()
	files := make([]*os.File, len(logs))
	for i, l := range logs {
		f, err := os.Open(l.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	for _, x := range xs {
		if _, err := files[x.Log].ReadAt(disk[x.Off:x.Off+x.Len], x.FileOff); err != nil {
			t.Fatalf("extent %+v: %v", x, err)
		}
	}
}
