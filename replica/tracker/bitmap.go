package tracker

import "sync/atomic"

// granule is the size of the regions the dirty map and the per-log written
// map mark: the resync's default block size (package chunker), so a
// marked region is exactly one block to compare.
const granule = 64 << 10

// bitmap marks granules of a disk. Marking is lock-free: writes on many
// goroutines set bits at once.
type bitmap struct{ w []atomic.Uint64 }

func newBitmap(size int64) *bitmap {
	n := (size + granule - 1) / granule
	return &bitmap{w: make([]atomic.Uint64, (n+63)/64)}
}

// mark sets the granules that [off, off+n) touches.
func (b *bitmap) mark(off, n int64) {
	if n <= 0 {
		return
	}
	for g := off / granule; g <= (off+n-1)/granule; g++ {
		if i := g / 64; i < int64(len(b.w)) {
			b.w[i].Or(1 << (g % 64))
		}
	}
}

// or adds every granule marked in o (of the same disk size).
func (b *bitmap) or(o *bitmap) {
	for i := range o.w {
		b.w[i].Or(o.w[i].Load())
	}
}

// words returns a copy of the bits, for persisting.
func (b *bitmap) words() []uint64 {
	out := make([]uint64, len(b.w))
	for i := range b.w {
		out[i] = b.w[i].Load()
	}
	return out
}
