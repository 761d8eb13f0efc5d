package hrl

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// logOf makes an in-memory log whose entries' data lie back to back from
// file offset 8192, as a Writer would put them within one block.
func logOf(ranges ...[2]int64) *Log {
	l := &Log{}
	pos := int64(8192)
	for _, r := range ranges {
		l.Entries = append(l.Entries, Entry{Off: r[0], Len: r[1], FileOff: pos})
		pos += r[1]
	}
	return l
}

func TestCoalesceCases(t *testing.T) {
	cases := []struct {
		name string
		logs []*Log
		want []Extent
	}{
		{"sequential writes merge", []*Log{logOf([2]int64{0, 10}, [2]int64{10, 10}, [2]int64{20, 5})},
			[]Extent{{0, 25, 0, 8192}}},
		{"hole punched in the middle", []*Log{logOf([2]int64{0, 100}), logOf([2]int64{40, 10})},
			[]Extent{{0, 40, 0, 8192}, {40, 10, 1, 8192}, {50, 50, 0, 8242}}},
		{"newer covers older", []*Log{logOf([2]int64{10, 5}, [2]int64{30, 5}), logOf([2]int64{0, 100})},
			[]Extent{{0, 100, 1, 8192}}},
		{"overlap both ends", []*Log{logOf([2]int64{0, 10}, [2]int64{20, 10}), logOf([2]int64{5, 20})},
			[]Extent{{0, 5, 0, 8192}, {5, 20, 1, 8192}, {25, 5, 0, 8207}}},
		{"same log rewrite", []*Log{logOf([2]int64{0, 10}, [2]int64{0, 4})},
			[]Extent{{0, 4, 0, 8202}, {4, 6, 0, 8196}}},
		{"contiguous on disk, not in file", []*Log{logOf([2]int64{10, 10}, [2]int64{0, 10})},
			[]Extent{{0, 10, 0, 8202}, {10, 10, 0, 8192}}},
		{"zero-length entries ignored", []*Log{logOf([2]int64{0, 0}), nil, logOf([2]int64{5, 1})},
			[]Extent{{5, 1, 2, 8192}}},
	}
	for _, c := range cases {
		if got := Coalesce(c.logs); !slices.Equal(got, c.want) {
			t.Errorf("%s: Coalesce = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestCoalesceReference compares Coalesce with a byte-by-byte owner map on
// many random small sequences.
func TestCoalesceReference(t *testing.T) {
	const disk = 512
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 3000 {
		var logs []*Log
		type src struct {
			log     int
			fileOff int64
		}
		owner := make([]src, disk)
		for i := range owner {
			owner[i].log = -1
		}
		for li := range 1 + rng.IntN(3) {
			var rs [][2]int64
			for range rng.IntN(40) {
				n := 1 + rng.Int64N(64)
				rs = append(rs, [2]int64{rng.Int64N(disk - n + 1), n})
			}
			l := logOf(rs...)
			for _, e := range l.Entries {
				for k := range e.Len {
					owner[e.Off+k] = src{li, e.FileOff + k}
				}
			}
			logs = append(logs, l)
		}
		got := make([]src, disk)
		for i := range got {
			got[i].log = -1
		}
		xs := Coalesce(logs)
		checkExtents(t, xs)
		for _, x := range xs {
			for k := range x.Len {
				got[x.Off+k] = src{x.Log, x.FileOff + k}
			}
		}
		if !slices.Equal(got, owner) {
			t.Fatalf("iteration %d: coalesced extents %v do not match the byte owner map", iter, xs)
		}
	}
}

// TestCoalesceMemoryBounded: a million tiny overlapping writes to a 4 KiB
// region keep a few thousand extents at most, and Coalesce allocates
// nothing per write.
func TestCoalesceMemoryBounded(t *testing.T) {
	const writes, region = 1_000_000, 4096
	rng := rand.New(rand.NewPCG(5, 6))
	l := &Log{Entries: make([]Entry, writes)}
	pos := int64(8192)
	for i := range l.Entries {
		n := 1 + rng.Int64N(16)
		l.Entries[i] = Entry{Off: rng.Int64N(region - n + 1), Len: n, FileOff: pos}
		pos += n
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	xs := Coalesce([]*Log{l})
	runtime.ReadMemStats(&after)
	checkExtents(t, xs)
	if len(xs) > region {
		t.Fatalf("%d extents for a %d-byte region", len(xs), region)
	}
	mallocs, bytes := after.Mallocs-before.Mallocs, after.TotalAlloc-before.TotalAlloc
	t.Logf("%d writes -> %d extents; Coalesce made %d allocations, %d bytes", writes, len(xs), mallocs, bytes)
	if mallocs > 2*region || bytes > 1<<20 {
		t.Fatalf("Coalesce made %d allocations (%d bytes) for %d live extents: memory grows with writes", mallocs, bytes, len(xs))
	}
}
