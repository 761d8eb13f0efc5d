package replica

import (
	"math/rand/v2"
	"testing"

	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/vhd"
)

// checkSpans verifies the invariants fillSpan and WriteBatch rely on: spans are page
// aligned, at most MaxWrite, never share a page, and hold exactly the
// input bytes, each extent clipped inside its span.
func checkSpans(t *testing.T, in []hrl.Extent, out []span) {
	t.Helper()
	var want, got int64
	for _, e := range in {
		want += e.Len
	}
	var prevEnd int64 = -1
	for i, s := range out {
		if s.a%target.PageSize != 0 || s.b%target.PageSize != 0 || s.b-s.a > target.MaxWrite || s.b <= s.a {
			t.Fatalf("span %d [%d,%d) not aligned or too big", i, s.a, s.b)
		}
		if s.a < prevEnd {
			t.Fatalf("span %d [%d,%d) overlaps the previous one ending at %d", i, s.a, s.b, prevEnd)
		}
		prevEnd = s.b
		for _, e := range s.exts {
			if e.Off < s.a || e.Off+e.Len > s.b || e.Len <= 0 {
				t.Fatalf("span %d [%d,%d) holds extent %+v outside it", i, s.a, s.b, e)
			}
			got += e.Len
		}
	}
	if got != want {
		t.Fatalf("spans hold %d bytes, extents %d", got, want)
	}
}

func TestSpans(t *testing.T) {
	const P, M = target.PageSize, target.MaxWrite
	cases := []struct {
		name  string
		in    []hrl.Extent
		spans int
	}{
		{"aligned", []hrl.Extent{{Off: 0, Len: 4096}}, 1},
		{"unaligned both ends", []hrl.Extent{{Off: 100, Len: 1000}}, 1},
		{"two sharing a page", []hrl.Extent{{Off: 0, Len: 700}, {Off: 700, Len: 100}}, 1},
		{"adjacent pages merge", []hrl.Extent{{Off: 0, Len: P}, {Off: P, Len: P}}, 1},
		{"far apart", []hrl.Extent{{Off: 0, Len: P}, {Off: 10 * P, Len: P}}, 2},
		{"long extent split", []hrl.Extent{{Off: 0, Len: 3*M + 10}}, 4},
		{"page shared at a MaxWrite boundary", []hrl.Extent{{Off: 0, Len: M - 100}, {Off: M - 100, Len: 300}}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := spans(c.in)
			checkSpans(t, c.in, out)
			if len(out) != c.spans {
				t.Fatalf("%d spans, want %d: %+v", len(out), c.spans, out)
			}
		})
	}
}

func TestSpansRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		var in []hrl.Extent
		off := int64(0)
		for range r.IntN(50) + 1 {
			off += r.Int64N(3 * 512)
			n := r.Int64N(6<<20) + 1
			in = append(in, hrl.Extent{Off: off, Len: n, FileOff: r.Int64N(1 << 30)})
			off += n
		}
		checkSpans(t, in, spans(in))
	}
}

func TestCopyChunks(t *testing.T) {
	const M = target.MaxWrite
	got := copyChunks([]vhd.Extent{{Off: 0, Len: 2 * M}, {Off: 2*M + 100, Len: 10}, {Off: 5 * M, Len: M + 512}}, M/2, 8*M)
	const B = blockSize
	want := []chunk{{M / 2, M / 2}, {M, M}, {2 * M, B}, {5 * M, M}, {6 * M, B}}
	if len(got) != len(want) {
		t.Fatalf("chunks %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("chunk %d = %v, want %v (all %v)", i, got[i], want[i], got)
		}
	}
	if c := copyChunks([]vhd.Extent{{Off: 0, Len: 8 * M}}, 8*M, 8*M); len(c) != 0 {
		t.Fatalf("a finished copy has chunks left: %v", c)
	}
}
