package chunker

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
)

// Encoded map, version 1, all integers little-endian:
//
//	offset  size  field
//	0       8     magic "ASRCKMAP"
//	8       2     version (1)
//	10      1     hash id (1 = XXH3-128)
//	11      1     reserved, 0
//	12      4     block size in bytes
//	16      8     disk size in bytes
//	24      8     number of non-zero blocks
//	32      B     zero bitmap, B = ceil(blocks/8); bit i%8 of byte i/8 set
//	              means block i is all zeros; padding bits are 0
//	32+B    H     digests of the non-zero blocks in block order,
//	              H = non-zero blocks * digest size
//	end-4   4     CRC-32C (Castagnoli) of every byte before it
//
// The non-zero count is redundant with the bitmap on purpose: it lets the
// total length be checked against len(b) before anything is allocated.
const (
	magic      = "ASRCKMAP"
	version    = FormatVersion
	headerSize = 32
	trailer    = 4

	offVersion   = 8
	offHash      = 10
	offReserved  = 11
	offBlockSize = 12
	offDiskSize  = 16
	offNonZero   = 24
)

// FormatVersion is the version of the encoding MarshalBinary writes.
const FormatVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes m in the versioned format above. It returns
// ErrArgument for a Map not made by Build or Unmarshal.
func (m *Map) MarshalBinary() ([]byte, error) {
	if err := m.check("to encode"); err != nil {
		return nil, fmt.Errorf("chunker: marshal: %w", err)
	}
	n := m.Blocks()
	nz := len(m.sums) / hashSize(m.Hash)
	b := make([]byte, headerSize, headerSize+(n+7)/8+len(m.sums)+trailer)
	copy(b, magic)
	binary.LittleEndian.PutUint16(b[offVersion:], version)
	b[offHash] = byte(m.Hash)
	binary.LittleEndian.PutUint32(b[offBlockSize:], uint32(m.BlockSize))
	binary.LittleEndian.PutUint64(b[offDiskSize:], uint64(m.Size))
	binary.LittleEndian.PutUint64(b[offNonZero:], uint64(nz))
	for i := 0; i < (n+7)/8; i++ {
		b = append(b, byte(m.zero[i/8]>>(8*(uint(i)%8))))
	}
	b = append(b, m.sums...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// Unmarshal decodes and validates an encoded map. It returns ErrCorrupt
// (naming the field and its offset) for any inconsistency, ErrVersion or
// ErrUnknownHash for a map from a newer build. Allocations are bounded by
// len(b); it never panics.
func Unmarshal(b []byte) (*Map, error) {
	if len(b) < headerSize+trailer {
		return nil, fmt.Errorf("%w: %d bytes, a map has at least %d (header and checksum); the file is truncated", ErrCorrupt, len(b), headerSize+trailer)
	}
	if string(b[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: magic at offset 0 is %q, want %q; this is not a checksum map", ErrCorrupt, b[:len(magic)], magic)
	}
	if v := binary.LittleEndian.Uint16(b[offVersion:]); v != version {
		return nil, fmt.Errorf("%w: version at offset %d is %d, this build reads %d", ErrVersion, offVersion, v, version)
	}
	end := len(b) - trailer
	if got, want := binary.LittleEndian.Uint32(b[end:]), crc32.Checksum(b[:end], castagnoli); got != want {
		return nil, fmt.Errorf("%w: checksum at offset %d is %08x, content gives %08x; the map is damaged or truncated", ErrCorrupt, end, got, want)
	}
	id := HashID(b[offHash])
	hs := hashSize(id)
	if hs == 0 {
		return nil, fmt.Errorf("%w: hash id at offset %d is %d", ErrUnknownHash, offHash, id)
	}
	if b[offReserved] != 0 {
		return nil, fmt.Errorf("%w: reserved byte at offset %d is %d, want 0", ErrCorrupt, offReserved, b[offReserved])
	}
	bs := binary.LittleEndian.Uint32(b[offBlockSize:])
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("%w: block size at offset %d is %d, want a power of two in [%d, %d]", ErrCorrupt, offBlockSize, bs, MinBlockSize, MaxBlockSize)
	}
	size := binary.LittleEndian.Uint64(b[offDiskSize:])
	if size > math.MaxInt64 {
		return nil, fmt.Errorf("%w: disk size at offset %d is %d, above the int64 limit", ErrCorrupt, offDiskSize, size)
	}
	// Each block needs at least one bitmap bit, so the block count is
	// bounded by the input length before it sizes anything.
	blocks := uint64(0)
	if size > 0 {
		blocks = (size-1)/uint64(bs) + 1
	}
	if blocks > 8*uint64(len(b)) || blocks > maxBlocks {
		return nil, fmt.Errorf("%w: disk size at offset %d is %d: %d blocks cannot fit a %d-byte map", ErrCorrupt, offDiskSize, size, blocks, len(b))
	}
	nz := binary.LittleEndian.Uint64(b[offNonZero:])
	if nz > blocks {
		return nil, fmt.Errorf("%w: non-zero block count at offset %d is %d, more than the %d blocks", ErrCorrupt, offNonZero, nz, blocks)
	}
	bitmapLen := (blocks + 7) / 8
	if want := headerSize + bitmapLen + nz*uint64(hs) + trailer; want != uint64(len(b)) {
		return nil, fmt.Errorf("%w: length is %d bytes, the header (offsets %d-%d) implies %d", ErrCorrupt, len(b), offBlockSize, offNonZero+7, want)
	}
	return decodeBody(b, id, int(bs), int64(size), int(blocks), int(nz))
}

// decodeBody reads the bitmap and digests once the lengths are known to
// match len(b).
func decodeBody(b []byte, id HashID, bs int, size int64, n, nz int) (*Map, error) {
	bitmap := b[headerSize : headerSize+(n+7)/8]
	if n%8 != 0 && bitmap[len(bitmap)-1]>>(uint(n)%8) != 0 {
		return nil, fmt.Errorf("%w: zero bitmap byte at offset %d has bits set past the last block %d", ErrCorrupt, headerSize+len(bitmap)-1, n-1)
	}
	zero := make([]uint64, (n+63)/64)
	zeros := 0
	for i, x := range bitmap {
		zero[i/8] |= uint64(x) << (8 * (uint(i) % 8))
		zeros += bits.OnesCount8(x)
	}
	if zeros != n-nz {
		return nil, fmt.Errorf("%w: non-zero block count at offset %d is %d, the zero bitmap at offset %d gives %d", ErrCorrupt, offNonZero, nz, headerSize, n-zeros)
	}
	sums := make([]byte, nz*hashSize(id))
	copy(sums, b[headerSize+len(bitmap):])
	return &Map{BlockSize: bs, Size: size, Hash: id, zero: zero, sums: sums}, nil
}
