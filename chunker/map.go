package chunker

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/zeebo/xxh3"
)

// Range is a byte range of a disk: Len bytes starting at Off.
type Range struct{ Off, Len int64 }

// HashID names the block hash a map was built with. It is stored in every
// encoded map, so a map written with one hash stays readable (and is
// refused as not comparable, never silently mis-compared) after the
// default changes.
type HashID uint8

// HashXXH3 is XXH3-128 as computed by github.com/zeebo/xxh3, stored as
// the 16 bytes of Uint128.Bytes (high half first).
const HashXXH3 HashID = 1

// Block size limits. A power of two keeps block boundaries on sector and
// page boundaries of every disk format asr handles.
const (
	MinBlockSize     = 4 << 10
	MaxBlockSize     = 16 << 20
	DefaultBlockSize = 64 << 10
)

// maxBlocks bounds the block count so a map's tables (16 bytes a block)
// stay allocatable: 2^32 blocks is 256 TiB at the default block size.
const maxBlocks = min(1<<32, math.MaxInt/64)

// hashSize returns the digest length of id, or 0 if id is unknown.
func hashSize(id HashID) int {
	if id == HashXXH3 {
		return 16
	}
	return 0
}

// sumBlock writes the digest of p under id into dst.
func sumBlock(id HashID, dst, p []byte) {
	s := xxh3.Hash128(p).Bytes()
	copy(dst, s[:])
}

// Map is the checksum map of one disk: for each fixed block, either a flag
// that the block is all zeros or the block's hash. Only BlockSize, Size and
// Hash are public; a Map whose fields were changed after Build or
// Unmarshal is refused with ErrArgument rather than mis-compared.
type Map struct {
	BlockSize int
	Size      int64
	Hash      HashID

	zero []uint64 // bit i of word i/64 set: block i is all zeros
	sums []byte   // digests of the non-zero blocks only, in block order
}

// Blocks returns the number of blocks; the last one may be short.
func (m *Map) Blocks() int { return blockCount(m.Size, m.BlockSize) }

// Zero reports whether block i is all zeros. It returns false for an i out
// of range.
func (m *Map) Zero(i int) bool {
	if i < 0 || i/64 >= len(m.zero) {
		return false
	}
	return m.zero[i/64]&(1<<(uint(i)%64)) != 0
}

// blockCount is ceil(size/bs) for valid arguments.
func blockCount(size int64, bs int) int {
	if bs <= 0 || size <= 0 {
		return 0
	}
	return int((size-1)/int64(bs) + 1)
}

// checkGeometry validates a block size and disk size as given to Build.
// It also refuses sizes whose map could not be indexed by an int.
func checkGeometry(size int64, bs int) error {
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return fmt.Errorf("%w: block size %d: want a power of two in [%d, %d]", ErrArgument, bs, MinBlockSize, MaxBlockSize)
	}
	if size < 0 {
		return fmt.Errorf("%w: disk size %d is negative", ErrArgument, size)
	}
	if (size-1)/int64(bs)+1 > maxBlocks {
		return fmt.Errorf("%w: disk size %d has more than %d blocks of %d bytes; use a larger block size", ErrArgument, size, maxBlocks, bs)
	}
	return nil
}

// check verifies that m's internal tables agree with its public fields, so
// Diff and MarshalBinary never index past a slice.
func (m *Map) check(name string) error {
	if m == nil {
		return fmt.Errorf("%w: map %s is nil", ErrArgument, name)
	}
	if err := checkGeometry(m.Size, m.BlockSize); err != nil {
		return fmt.Errorf("map %s: %w", name, err)
	}
	hs := hashSize(m.Hash)
	if hs == 0 {
		return fmt.Errorf("%w: map %s: hash id %d", ErrUnknownHash, name, m.Hash)
	}
	n := m.Blocks()
	if len(m.zero) != (n+63)/64 {
		return fmt.Errorf("%w: map %s has %d bitmap words for %d blocks; build it with Build or Unmarshal", ErrArgument, name, len(m.zero), n)
	}
	if n%64 != 0 && m.zero[len(m.zero)-1]>>(uint(n)%64) != 0 {
		return fmt.Errorf("%w: map %s has zero flags past block %d", ErrArgument, name, n)
	}
	if nz := n - popcount(m.zero); len(m.sums) != nz*hs {
		return fmt.Errorf("%w: map %s has %d hash bytes for %d non-zero blocks", ErrArgument, name, len(m.sums), nz)
	}
	return nil
}

func popcount(w []uint64) int {
	c := 0
	for _, x := range w {
		c += bits.OnesCount64(x)
	}
	return c
}

// ranks returns, for each bitmap word, how many non-zero blocks precede
// it, so a worker can find the digest of any block without a full scan.
func (m *Map) ranks() []int {
	r := make([]int, len(m.zero))
	c := 0
	for i, w := range m.zero {
		r[i] = c
		valid := 64
		if i == len(m.zero)-1 && m.Blocks()%64 != 0 {
			valid = m.Blocks() % 64
		}
		c += valid - bits.OnesCount64(w)
	}
	return r
}

// sumAt returns the digest of non-zero block i using the rank table.
func (m *Map) sumAt(rank []int, i int) []byte {
	w := m.zero[i/64]
	below := uint(i) % 64
	nonZeroBefore := int(below) - bits.OnesCount64(w&(1<<below-1))
	hs := hashSize(m.Hash)
	k := (rank[i/64] + nonZeroBefore) * hs
	return m.sums[k : k+hs]
}
