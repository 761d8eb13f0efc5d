package chunker

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestDiffFindsExactlyTheChangedBlocks(t *testing.T) {
	const bs = 4 << 10
	const size = 20*bs + 100 // block 20 is 100 bytes long
	base := disk(4, size, bs, 3, 4, 12)
	tests := []struct {
		name   string
		change func(d []byte)
		want   []Range
	}{
		{"identical", func(d []byte) {}, nil},
		{"one byte in block 7", func(d []byte) { d[7*bs+123] ^= 1 }, []Range{{7 * bs, bs}}},
		{"short last block", func(d []byte) { d[size-1] ^= 0x80 }, []Range{{20 * bs, 100}}},
		{"data to all zeros", func(d []byte) { clear(d[9*bs : 10*bs]) }, []Range{{9 * bs, bs}}},
		{"zeros to data", func(d []byte) { d[4*bs+bs-1] = 1 }, []Range{{4 * bs, bs}}},
		{"short last block to zeros", func(d []byte) { clear(d[20*bs:]) }, []Range{{20 * bs, 100}}},
		{"adjacent blocks merge", func(d []byte) {
			d[1*bs] ^= 1
			d[2*bs+5] ^= 1
			d[3*bs+9] = 7 // block 3 was zero
			d[10*bs] ^= 1
		}, []Range{{1 * bs, 3 * bs}, {10 * bs, bs}}},
		{"first and through the end", func(d []byte) {
			d[0] ^= 1
			d[19*bs] ^= 1
			d[20*bs] ^= 1
		}, []Range{{0, bs}, {19 * bs, bs + 100}}},
		{"write spanning a boundary", func(d []byte) { copy(d[6*bs-10:], []byte("twenty bytes of text")) },
			[]Range{{5 * bs, 2 * bs}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(base)
			tc.change(b)
			got := diffBoth(t, base, b, bs)
			if !equalRanges(got, tc.want) {
				t.Fatalf("Diff = %v, want %v", got, tc.want)
			}
		})
	}
}

// Random edits over a disk of several runs: Diff and DiffReader agree and
// report exactly the blocks whose bytes differ.
func TestDiffRandomEditsMatchByteComparison(t *testing.T) {
	const bs = 64 << 10
	const size = 300*bs - 5000 // several 8 MiB runs and a short last block
	rng := rand.New(rand.NewPCG(9, 9))
	base := disk(5, size, bs, 0, 1, 100, 299)
	for iter := range 5 {
		b := bytes.Clone(base)
		for range rng.IntN(40) {
			off := rng.IntN(size)
			switch rng.IntN(3) {
			case 0:
				b[off] ^= byte(1 + rng.IntN(255))
			case 1:
				blk := off / bs
				clear(b[blk*bs : min(blk*bs+bs, size)])
			case 2:
				b[off] = byte(rng.Uint32()) | 1
			}
		}
		var want []Range
		for i := 0; i*bs < size; i++ {
			lo, hi := i*bs, min(i*bs+bs, size)
			if !bytes.Equal(base[lo:hi], b[lo:hi]) {
				want = addBlock(want, i, bs, size)
			}
		}
		if got := diffBoth(t, base, b, bs); !equalRanges(got, want) {
			t.Fatalf("iteration %d: Diff = %v, want %v", iter, got, want)
		}
	}
}

func TestDiffRefusesDifferentGeometry(t *testing.T) {
	d := disk(6, 64<<10, 4096)
	a := build(t, d, 4096)
	for name, b := range map[string]*Map{
		"block size": build(t, d, 8192),
		"disk size":  build(t, d[:len(d)-1], 4096),
	} {
		if _, err := Diff(a, b); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: Diff = %v, want ErrMismatch", name, err)
		}
	}
	other := *a
	other.Hash = 2
	if _, err := Diff(a, &other); !errors.Is(err, ErrUnknownHash) {
		t.Errorf("unknown hash: Diff = %v, want ErrUnknownHash", err)
	}
	if _, err := DiffReader(context.Background(), a, bytes.NewReader(d), int64(len(d))-1); !errors.Is(err, ErrMismatch) {
		t.Errorf("DiffReader with another size = %v, want ErrMismatch", err)
	}
}

func TestDiffRefusesMapsNotBuilt(t *testing.T) {
	good := build(t, disk(7, 32<<10, 4096), 4096)
	tampered := *good
	tampered.Size += 4096 // one more block than the tables hold
	for name, m := range map[string]*Map{
		"nil": nil, "zero value": {}, "literal": {BlockSize: 4096, Size: 4096, Hash: HashXXH3}, "tampered": &tampered,
	} {
		if _, err := Diff(good, m); !errors.Is(err, ErrArgument) {
			t.Errorf("Diff(good, %s) = %v, want ErrArgument", name, err)
		}
		if _, err := Diff(m, good); !errors.Is(err, ErrArgument) {
			t.Errorf("Diff(%s, good) = %v, want ErrArgument", name, err)
		}
		if _, err := m.MarshalBinary(); !errors.Is(err, ErrArgument) {
			t.Errorf("%s.MarshalBinary = %v, want ErrArgument", name, err)
		}
		if _, err := DiffReader(context.Background(), m, bytes.NewReader(nil), 4096); !errors.Is(err, ErrArgument) {
			t.Errorf("DiffReader(%s) = %v, want ErrArgument", name, err)
		}
	}
}

func TestDiffReaderShortRead(t *testing.T) {
	d := disk(8, 64<<10, 4096)
	m := build(t, d, 4096)
	if _, err := DiffReader(context.Background(), m, bytes.NewReader(d[:1000]), int64(len(d))); !errors.Is(err, ErrShortRead) {
		t.Fatalf("DiffReader on a short disk = %v, want ErrShortRead", err)
	}
}
