package chunker

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
)

// Build reads the first size bytes of r and returns their checksum map
// with blocks of blockSize bytes (0 means DefaultBlockSize); the last block
// may be short. All-zero blocks are recorded as a flag with no hash.
// Blocks are hashed on runtime.GOMAXPROCS(0) workers, each reading its own
// runs of consecutive blocks, so r must allow concurrent ReadAt calls (as
// *os.File does). Build returns ErrArgument for a bad size or block size,
// ErrShortRead if r ends before size, and the context's error if ctx ends.
func Build(ctx context.Context, r io.ReaderAt, size int64, blockSize int) (*Map, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if err := checkGeometry(size, blockSize); err != nil {
		return nil, fmt.Errorf("chunker: build: %w", err)
	}
	m := &Map{BlockSize: blockSize, Size: size, Hash: HashXXH3}
	n := m.Blocks()
	hs := hashSize(m.Hash)
	// Workers write digests into a dense table first, since runs finish
	// out of order; it is compacted to non-zero blocks afterwards.
	dense := make([]byte, n*hs)
	zero := make([]uint64, (n+63)/64)
	err := scan(ctx, r, size, blockSize, func(i int, data []byte, isZero bool) {
		if isZero {
			// Neighbouring blocks share a word and may be in another
			// worker's run.
			atomic.OrUint64(&zero[i/64], 1<<(uint(i)%64))
			return
		}
		sumBlock(m.Hash, dense[i*hs:(i+1)*hs], data)
	})
	if err != nil {
		return nil, fmt.Errorf("chunker: build map of %d bytes: %w", size, err)
	}
	m.zero = zero
	m.sums = compact(dense, zero, n, hs)
	return m, nil
}

// compact keeps the digests of non-zero blocks, in block order, in a slice
// of exactly their size.
func compact(dense []byte, zero []uint64, n, hs int) []byte {
	nz := n - popcount(zero)
	if nz == n {
		return dense
	}
	out := make([]byte, 0, nz*hs)
	for i := range n {
		if zero[i/64]&(1<<(uint(i)%64)) == 0 {
			out = append(out, dense[i*hs:(i+1)*hs]...)
		}
	}
	return out
}
