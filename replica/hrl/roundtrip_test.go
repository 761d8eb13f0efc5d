package hrl

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// TestRoundTrip sends random write sequences through chained Writers, then
// Open + CheckChain + Coalesce, and applies the extents from the log files
// to a disk that must equal the writes applied directly.
func TestRoundTrip(t *testing.T) {
	const diskSize = 4 << 20
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			dir := t.TempDir()
			want := make([]byte, diskSize)
			covered := make([]bool, diskSize)
			anchor := uuid.New()
			prev := anchor
			var logs []*Log
			for li := range 1 + rng.IntN(4) {
				ms := []int{512, 4096, 8192}[rng.IntN(3)]
				w, err := Create(filepath.Join(dir, fmt.Sprintf("%d.hrl", li)), Options{PreviousID: prev, MetadataSize: ms})
				if err != nil {
					t.Fatal(err)
				}
				var n int
				var bytesIn int64
				for range rng.IntN(250) {
					size := randLen(rng)
					off := rng.Int64N(diskSize - int64(size) + 1)
					p := make([]byte, size)
					for i := range p {
						p[i] = byte(rng.Uint32())
					}
					if err := w.Write(off, p); err != nil {
						t.Fatal(err)
					}
					copy(want[off:], p)
					for i := range p {
						covered[off+int64(i)] = true
					}
					n++
					bytesIn += int64(size)
					if rng.IntN(60) == 0 {
						if err := w.Flush(); err != nil {
							t.Fatal(err)
						}
					}
				}
				if w.DataBytes() != bytesIn {
					t.Fatalf("DataBytes %d, wrote %d", w.DataBytes(), bytesIn)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				l, err := Open(w.Path())
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Entries) != n || l.DataBytes != bytesIn || l.ID != w.ID() || l.PreviousID != prev {
					t.Fatalf("log %d: %d entries %d bytes id %s prev %s; want %d %d %s %s", li, len(l.Entries), l.DataBytes, l.ID, l.PreviousID, n, bytesIn, w.ID(), prev)
				}
				logs = append(logs, l)
				prev = w.ID()
			}
			if err := CheckChain(logs, anchor); err != nil {
				t.Fatal(err)
			}
			xs := Coalesce(logs)
			checkExtents(t, xs)
			got := make([]byte, diskSize)
			applyExtents(t, logs, xs, got)
			if !bytes.Equal(got, want) {
				t.Fatal("disk rebuilt from coalesced logs differs from the writes applied directly")
			}
			var live int64
			for _, x := range xs {
				live += x.Len
			}
			var cov int64
			for _, c := range covered {
				if c {
					cov++
				}
			}
			if live != cov {
				t.Fatalf("extents cover %d bytes, writes covered %d", live, cov)
			}
		})
	}
}

// randLen is mostly small writes, some medium, a few up to 256 KiB.
func randLen(rng *rand.Rand) int {
	switch r := rng.IntN(20); {
	case r < 14:
		return 1 + rng.IntN(4096)
	case r < 19:
		return 1 + rng.IntN(64<<10)
	default:
		return 1 + rng.IntN(256<<10)
	}
}

// checkExtents asserts Coalesce's output contract.
func checkExtents(t *testing.T, xs []Extent) {
	t.Helper()
	for i, x := range xs {
		if x.Len <= 0 {
			t.Fatalf("extent %d has length %d", i, x.Len)
		}
		if i == 0 {
			continue
		}
		p := xs[i-1]
		if p.end() > x.Off {
			t.Fatalf("extents %d %+v and %d %+v overlap or are unsorted", i-1, p, i, x)
		}
		if p.follows(x) {
			t.Fatalf("extents %d %+v and %d %+v should have been merged", i-1, p, i, x)
		}
	}
}

// TestBlockBoundaries checks file size and entries around 127 entries per
// 4096-byte block.
func TestBlockBoundaries(t *testing.T) {
	for _, n := range []int{0, 1, 126, 127, 128, 254, 255} {
		ws := smallWrites(n, 10, uint64(n))
		path, _ := buildLog(t, t.TempDir(), "b.hrl", Options{}, ws)
		blocks := (n + 126) / 127
		wantSize := 8192 + 10*n + 4096*blocks
		if size := len(readFile(t, path)); size != wantSize {
			t.Errorf("%d entries: file %d bytes, want %d (%d blocks after block #1)", n, size, wantSize, blocks)
		}
		l, err := Open(path)
		if err != nil {
			t.Fatalf("%d entries: %v", n, err)
		}
		if len(l.Entries) != n {
			t.Fatalf("%d entries: Open found %d", n, len(l.Entries))
		}
		pos := int64(8192)
		for i, e := range l.Entries {
			if e.Off != ws[i].off || e.Len != 10 || e.FileOff != pos || !e.Time.Equal(fixedNow) {
				t.Fatalf("%d entries: entry %d = %+v, want off %d len 10 at %d", n, i, e, ws[i].off, pos)
			}
			pos += 10
			if (i+1)%127 == 0 {
				pos += 4096 // a full block follows
			}
		}
	}
}

// TestFlushPartialBlocks: Flush writes short blocks; the reader stitches
// them back in order.
func TestFlushPartialBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.hrl")
	w, err := Create(path, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ws := smallWrites(300, 33, 5)
	for i, x := range ws {
		if err := w.Write(x.off, x.data); err != nil {
			t.Fatal(err)
		}
		if i%50 == 7 || i == 299 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil { // nothing pending: fsync only
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Write(0, []byte{1}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range l.Entries {
		if e.Off != ws[i].off || e.Len != 33 {
			t.Fatalf("entry %d = %+v, want off %d", i, e, ws[i].off)
		}
	}
	if len(l.Entries) != 300 {
		t.Fatalf("%d entries, want 300", len(l.Entries))
	}
}

// TestConcurrentWrites: every concurrent Write lands as one whole entry.
func TestConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.hrl")
	w, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				if err := w.Write(int64(g*100+i)*512, bytes.Repeat([]byte{byte(g + 1)}, 512)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 400 {
		t.Fatalf("%d entries, want 400", len(l.Entries))
	}
	disk := make([]byte, 400*512)
	applyExtents(t, []*Log{l}, Coalesce([]*Log{l}), disk)
	for i := range 400 {
		if want := bytes.Repeat([]byte{byte(i/100 + 1)}, 512); !bytes.Equal(disk[i*512:(i+1)*512], want) {
			t.Fatalf("sector %d holds % x..., want %x", i, disk[i*512:i*512+4], want[0])
		}
	}
}

// TestSalvage: a log abandoned without Close yields ErrNotClosed from
// Open, and Salvage returns exactly what the last Flush made durable.
func TestSalvage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.hrl")
	w, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ws := smallWrites(330, 100, 3)
	for i, x := range ws {
		if err := w.Write(x.off, x.data); err != nil {
			t.Fatal(err)
		}
		if i == 199 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.f.Close() // crash: no Close, 130 writes and one full block after the Flush
	if _, err := Open(path); !errors.Is(err, ErrNotClosed) {
		t.Fatalf("Open: %v, want ErrNotClosed", err)
	}
	l, tail, err := Salvage(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 200 || l.Closed {
		t.Fatalf("salvaged %d entries (closed %v), want 200 from an unclosed log", len(l.Entries), l.Closed)
	}
	if want := int64(130*100 + 4096); tail != want {
		t.Fatalf("tail %d bytes, want %d", tail, want)
	}
	info, err := Inspect(path)
	if !errors.Is(err, ErrNotClosed) || info.Valid || info.Closed || info.Entries != 200 || info.TailBytes != tail || info.Error == "" {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
}
