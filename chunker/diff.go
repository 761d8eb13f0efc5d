package chunker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
)

// Diff returns the byte ranges, sorted and merged, whose blocks differ
// between a and b: a block differs when exactly one side is all zeros or
// both are non-zero with different digests. The last range is clipped to
// the disk size. Diff returns ErrMismatch if the maps differ in block size,
// disk size or hash, and ErrArgument for a Map not made by Build or
// Unmarshal.
func Diff(a, b *Map) ([]Range, error) {
	if err := a.check("a"); err != nil {
		return nil, fmt.Errorf("chunker: diff: %w", err)
	}
	if err := b.check("b"); err != nil {
		return nil, fmt.Errorf("chunker: diff: %w", err)
	}
	if err := sameGeometry(a, b.BlockSize, b.Size, b.Hash); err != nil {
		return nil, fmt.Errorf("chunker: diff: %w", err)
	}
	hs := hashSize(a.Hash)
	var out []Range
	pa, pb := 0, 0 // next digest of a and b: both walk blocks in order
	for i := range a.Blocks() {
		za, zb := a.Zero(i), b.Zero(i)
		same := za && zb
		if !za && !zb {
			same = bytes.Equal(a.sums[pa:pa+hs], b.sums[pb:pb+hs])
		}
		if !za {
			pa += hs
		}
		if !zb {
			pb += hs
		}
		if !same {
			out = addBlock(out, i, a.BlockSize, a.Size)
		}
	}
	return out, nil
}

// DiffReader compares m against the first size bytes of r, block by block,
// and returns the differing ranges as Diff would for m and a map of r. It
// hashes r on GOMAXPROCS workers like Build but keeps only one bit per
// block, never a second map. r must allow concurrent ReadAt calls.
func DiffReader(ctx context.Context, m *Map, r io.ReaderAt, size int64) ([]Range, error) {
	if err := m.check("m"); err != nil {
		return nil, fmt.Errorf("chunker: diff reader: %w", err)
	}
	if err := sameGeometry(m, m.BlockSize, size, m.Hash); err != nil {
		return nil, fmt.Errorf("chunker: diff reader: %w", err)
	}
	n := m.Blocks()
	hs := hashSize(m.Hash)
	rank := m.ranks()
	differ := make([]uint64, (n+63)/64)
	err := scan(ctx, r, size, m.BlockSize, func(i int, data []byte, isZero bool) {
		var same bool
		switch mz := m.Zero(i); {
		case mz || isZero:
			same = mz && isZero
		default:
			var sum [32]byte
			sumBlock(m.Hash, sum[:hs], data)
			same = bytes.Equal(sum[:hs], m.sumAt(rank, i))
		}
		if !same {
			atomic.OrUint64(&differ[i/64], 1<<(uint(i)%64))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("chunker: diff reader: %w", err)
	}
	var out []Range
	for i := range n {
		if differ[i/64]&(1<<(uint(i)%64)) != 0 {
			out = addBlock(out, i, m.BlockSize, m.Size)
		}
	}
	return out, nil
}

// comparable checks that a can be compared block by block with a map or
// disk of the given geometry and hash.
func sameGeometry(a *Map, bs int, size int64, id HashID) error {
	switch {
	case a.BlockSize != bs:
		return fmt.Errorf("%w: block size %d vs %d", ErrMismatch, a.BlockSize, bs)
	case a.Size != size:
		return fmt.Errorf("%w: disk size %d vs %d", ErrMismatch, a.Size, size)
	case a.Hash != id:
		return fmt.Errorf("%w: hash id %d vs %d", ErrMismatch, a.Hash, id)
	}
	return nil
}

// addBlock appends block i to the sorted ranges, extending the last range
// when i follows it directly.
func addBlock(out []Range, i, bs int, size int64) []Range {
	off := int64(i) * int64(bs)
	l := min(int64(bs), size-off)
	if k := len(out) - 1; k >= 0 && out[k].Off+out[k].Len == off {
		out[k].Len += l
		return out
	}
	return append(out, Range{Off: off, Len: l})
}
