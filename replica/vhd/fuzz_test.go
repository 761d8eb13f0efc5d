package vhd

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
)

// FuzzOpen: any file opens or fails with an error, never panics; what opens
// reads, lists sorted in-range extents, stays within a memory bound set by
// the file size, and survives a write: the file reopens and reads it back.
//
// Run with a short minimization time, or minimizing the first new inputs
// (kilobytes each) eats the whole budget:
//
//	go test -run '^$' -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 2s ./replica/vhd
func FuzzOpen(f *testing.F) {
	f.Add(dynBase().bytes())
	f.Add(image{size: 4096, bs: 512, blocks: map[int64][]byte{1: {1, 2, 3}}}.bytes())
	f.Add(image{size: 8192, bs: 4096, diskType: diskDifferencing, parentName: "p.vhd",
		locators: [][2]string{{"W2ru", `.\p.vhd`}, {"W2ku", `C:\p.vhd`}}}.bytes())
	f.Add(append(make([]byte, 4096), FixedFooter(4096, [16]byte{1}, vhdEpoch)...))
	f.Add(dynBase().bytes()[:3000])
	f.Add([]byte("conectix"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		fh, err := os.CreateTemp(dir, "*.vhd")
		if err != nil {
			t.Fatal(err)
		}
		name := fh.Name()
		defer os.Remove(name)
		if _, err := fh.Write(data); err != nil {
			t.Fatal(err)
		}
		fh.Close()

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		checkOpen(t, name, int64(len(data)))
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20+16*uint64(len(data)) {
			t.Fatalf("allocated %d bytes for a %d-byte file", grew, len(data))
		}
		Inspect(name)
		checkWrite(t, name)
	})
}

const fuzzReadAll = 8 << 20 // read disks up to this size whole, larger ones sampled

func checkOpen(t *testing.T, name string, fileSize int64) {
	d, err := Open(name)
	if err != nil {
		if d != nil {
			t.Fatal("Open returned a disk and an error")
		}
		return
	}
	defer d.Close()
	if d.Size() < 0 {
		t.Fatalf("size %d", d.Size())
	}
	ext, err := d.Extents()
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range ext {
		if x.Off < 0 || x.Len <= 0 || x.Off+x.Len > d.Size() || (i > 0 && x.Off <= ext[i-1].Off+ext[i-1].Len) {
			t.Fatalf("bad extents %+v for size %d", ext, d.Size())
		}
	}
	buf := make([]byte, 1<<20)
	read := func(off, n int64) {
		n = min(n, int64(len(buf)))
		if _, err := d.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			if !errors.Is(err, ErrTruncated) { // a tail-less file may end inside a block
				t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
			}
		}
	}
	if d.Size() <= fuzzReadAll {
		for off := int64(0); off < d.Size(); off += int64(len(buf)) {
			read(off, int64(len(buf)))
		}
	} else {
		for _, x := range ext[:min(len(ext), 32)] {
			read(x.Off, min(x.Len, 64<<10))
		}
		read(d.Size()-4096, 4096)
	}
}

// checkWrite writes 600 bytes across a sector edge in the middle of a disk
// that opens for writing; the file must reopen and read them back.
func checkWrite(t *testing.T, name string) {
	d, err := OpenWritable(name)
	if err != nil {
		return
	}
	off := d.Size()/2 - 300
	if off < 0 || d.Size() < 600 {
		d.Close()
		return
	}
	p := pattern(600, 0x77)
	if _, err := d.WriteAt(p, off); err != nil {
		d.Close()
		if errors.Is(err, ErrOutOfRange) { // block past the 2 TiB BAT range
			return
		}
		t.Fatalf("WriteAt on %s disk: %v", d.Type(), err)
	}
	d.Close()
	d, err = Open(name)
	if err != nil {
		t.Fatalf("reopen after write: %v", err)
	}
	defer d.Close()
	got := make([]byte, 600)
	if _, err := d.ReadAt(got, off); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read back after write: %v", err)
	}
}
