package chunker

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
)

// disk returns size deterministic random bytes from seed with the blocks
// listed in zeros cleared, so every other block is non-zero.
func disk(seed uint64, size int64, bs int, zeros ...int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	rng := rand.New(rand.NewChaCha8(key))
	d := make([]byte, size)
	for i := 0; i+8 <= len(d); i += 8 {
		x := rng.Uint64() | 1 // never an all-zero word
		for k := range 8 {
			d[i+k] = byte(x >> (8 * k))
		}
	}
	for i := len(d) &^ 7; i < len(d); i++ {
		d[i] = byte(rng.Uint32()) | 1
	}
	for _, z := range zeros {
		clear(d[int64(z)*int64(bs) : min(int64(z+1)*int64(bs), size)])
	}
	return d
}

func build(t testing.TB, d []byte, bs int) *Map {
	t.Helper()
	m, err := Build(context.Background(), bytes.NewReader(d), int64(len(d)), bs)
	if err != nil {
		t.Fatalf("Build(%d bytes, bs %d): %v", len(d), bs, err)
	}
	return m
}

func encode(t testing.TB, m *Map) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return b
}

// diffBoth runs Diff on maps of a and b and DiffReader of a's map against b,
// fails if they disagree, and returns the ranges.
func diffBoth(t *testing.T, a, b []byte, bs int) []Range {
	t.Helper()
	ma, mb := build(t, a, bs), build(t, b, bs)
	got, err := Diff(ma, mb)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	viaReader, err := DiffReader(context.Background(), ma, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("DiffReader: %v", err)
	}
	if !equalRanges(got, viaReader) {
		t.Fatalf("Diff %v and DiffReader %v disagree", got, viaReader)
	}
	return got
}

func equalRanges(a, b []Range) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
