package chunker

import (
	"bytes"
	"fmt"
)

// Table is a checksum map that can be changed one block at a time: the
// form a replica's map takes while writes are applied to the replica
// (every block written is set again from the bytes it now holds). It
// keeps a digest slot for every block, zero or not, so Set is O(1); Map
// and Table convert between the compact and the editable form.
type Table struct {
	BlockSize int
	Size      int64
	Hash      HashID

	zero  []uint64
	dense []byte
}

// NewTable returns the table of an all-zero disk of size bytes (a
// replica just created), with blocks of blockSize bytes (0: the default).
func NewTable(size int64, blockSize int) (*Table, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if err := checkGeometry(size, blockSize); err != nil {
		return nil, fmt.Errorf("chunker: new table: %w", err)
	}
	n := blockCount(size, blockSize)
	t := &Table{BlockSize: blockSize, Size: size, Hash: HashXXH3, zero: make([]uint64, (n+63)/64), dense: make([]byte, n*hashSize(HashXXH3))}
	for i := range n {
		t.zero[i/64] |= 1 << (uint(i) % 64)
	}
	return t, nil
}

// Table returns an editable copy of m.
func (m *Map) Table() (*Table, error) {
	if err := m.check("m"); err != nil {
		return nil, fmt.Errorf("chunker: table: %w", err)
	}
	n, hs := m.Blocks(), hashSize(m.Hash)
	t := &Table{BlockSize: m.BlockSize, Size: m.Size, Hash: m.Hash, zero: append([]uint64(nil), m.zero...), dense: make([]byte, n*hs)}
	rank := m.ranks()
	for i := range n {
		if !m.Zero(i) {
			copy(t.dense[i*hs:], m.sumAt(rank, i))
		}
	}
	return t, nil
}

// Blocks returns the number of blocks; the last one may be short.
func (t *Table) Blocks() int { return blockCount(t.Size, t.BlockSize) }

// BlockLen is the length of block i: BlockSize, or less for the last one.
func (t *Table) BlockLen(i int) int {
	return int(min(int64(t.BlockSize), t.Size-int64(i)*int64(t.BlockSize)))
}

// Zero reports whether block i is recorded as all zeros.
func (t *Table) Zero(i int) bool { return t.zero[i/64]&(1<<(uint(i)%64)) != 0 }

// Set records data, which must be block i's whole content, as block i.
func (t *Table) Set(i int, data []byte) {
	hs := hashSize(t.Hash)
	if isZero(data) {
		t.zero[i/64] |= 1 << (uint(i) % 64)
		clear(t.dense[i*hs : (i+1)*hs])
		return
	}
	t.zero[i/64] &^= 1 << (uint(i) % 64)
	sumBlock(t.Hash, t.dense[i*hs:(i+1)*hs], data)
}

// Same reports whether data, block i's whole content on another disk,
// equals what the table records for block i (zeros compared exactly).
func (t *Table) Same(i int, data []byte) bool {
	z := isZero(data)
	if tz := t.Zero(i); z || tz {
		return z && tz
	}
	hs := hashSize(t.Hash)
	var sum [32]byte
	sumBlock(t.Hash, sum[:hs], data)
	return bytes.Equal(sum[:hs], t.dense[i*hs:(i+1)*hs])
}

// Grow extends the table to a larger disk size; the new blocks are zero
// and a short last block that grows is set from last, its new content.
func (t *Table) Grow(size int64, last []byte) error {
	if size < t.Size {
		return fmt.Errorf("%w: grow from %d to %d bytes", ErrArgument, t.Size, size)
	}
	old := t.Blocks()
	if err := checkGeometry(size, t.BlockSize); err != nil {
		return fmt.Errorf("chunker: grow: %w", err)
	}
	t.Size = size
	n, hs := t.Blocks(), hashSize(t.Hash)
	for len(t.zero) < (n+63)/64 {
		t.zero = append(t.zero, 0)
	}
	t.dense = append(t.dense, make([]byte, (n-old)*hs)...)
	for i := old; i < n; i++ {
		t.zero[i/64] |= 1 << (uint(i) % 64)
	}
	if old > 0 && last != nil {
		t.Set(old-1, last)
	}
	return nil
}

// Map returns the compact form of the table, for Diff and MarshalBinary.
func (t *Table) Map() *Map {
	z := append([]uint64(nil), t.zero...)
	return &Map{BlockSize: t.BlockSize, Size: t.Size, Hash: t.Hash, zero: z,
		sums: compact(append([]byte(nil), t.dense...), z, t.Blocks(), hashSize(t.Hash))}
}

func isZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroBlock))
		if !bytes.Equal(p[:n], zeroBlock[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

var zeroBlock = make([]byte, 64<<10)
