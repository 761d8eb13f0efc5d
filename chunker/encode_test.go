package chunker

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// vectors pin the encoding of maps of seeded inputs: the length and the
// SHA-256 of the encoded bytes. A change here is a format change: bump the
// version instead.
var vectors = []struct {
	name   string
	seed   uint64
	size   int64
	bs     int
	zeros  []int
	length int
	sha256 string
}{
	{"4KiB blocks, short tail", 1, 10*4096 + 1000, 4096, []int{0, 2, 5}, 166, "09952dba91d2faf24f4d5ed545177be3ef5a2ba787bc733ebd19aa57775771df"},
	{"64KiB blocks", 2, 3<<20 + 12345, 64 << 10, []int{1, 10, 48}, 779, "cb6297b7d0835aa87756b5f0813acede4e398e99e4ef986f46e18d561b44c30a"},
	{"empty disk", 3, 0, 64 << 10, nil, 36, "b26d11c0194008ca58bdb959f7df4db3bbbdea4d2c1f23fc0b50b11fb2b22eef"},
	{"all zeros", 4, 1 << 20, 256 << 10, []int{0, 1, 2, 3}, 37, "735c1677d472d9f898060d89e05effcc2e8f08d4fb820b982932fc7e6d9b34e5"},
}

func TestPinnedVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			b := encode(t, build(t, disk(v.seed, v.size, v.bs, v.zeros...), v.bs))
			sum := sha256.Sum256(b)
			if len(b) != v.length || hex.EncodeToString(sum[:]) != v.sha256 {
				t.Fatalf("encoded %d bytes, sha256 %x; want %d bytes, sha256 %s", len(b), sum, v.length, v.sha256)
			}
		})
	}
}

// The smallest maps are pinned byte for byte, which also documents the
// header layout.
func TestPinnedHeaderBytes(t *testing.T) {
	b := encode(t, build(t, make([]byte, 1<<20), 256<<10))
	want := "415352434b4d4150" + "0100" + "01" + "00" + "00000400" +
		"0000100000000000" + "0000000000000000" + "0f" + ""
	if got := hex.EncodeToString(b[:len(b)-4]); got != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
	if got, want := binary.LittleEndian.Uint32(b[len(b)-4:]), crc32.Checksum(b[:len(b)-4], castagnoli); got != want {
		t.Fatalf("trailing checksum %08x, want %08x", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	const bs = 4096
	cases := map[string][]byte{
		"empty":              nil,
		"one short block":    disk(10, 100, bs),
		"all zero":           make([]byte, 70*bs),
		"no zero, 64 blocks": disk(11, 64*bs, bs),
		"mixed, 129 blocks":  disk(12, 128*bs+1, bs, 0, 63, 64, 65, 127, 128),
	}
	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			m := build(t, d, bs)
			b := encode(t, m)
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if got.BlockSize != m.BlockSize || got.Size != m.Size || got.Hash != m.Hash ||
				!bytes.Equal(got.sums, m.sums) || len(got.zero) != len(m.zero) {
				t.Fatalf("decoded map differs: %+v vs %+v", got, m)
			}
			for i := range m.zero {
				if got.zero[i] != m.zero[i] {
					t.Fatalf("zero word %d: %x vs %x", i, got.zero[i], m.zero[i])
				}
			}
			if again := encode(t, got); !bytes.Equal(again, b) {
				t.Fatal("re-encoding the decoded map changed its bytes")
			}
			if r, err := Diff(m, got); err != nil || len(r) != 0 {
				t.Fatalf("Diff(built, decoded) = %v, %v; want no ranges", r, err)
			}
		})
	}
}

// resum rewrites the trailing checksum so a test reaches the field check
// behind it.
func resum(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

func TestUnmarshalRejectsCorruption(t *testing.T) {
	// 11 blocks of 4 KiB (the last short), blocks 0, 2 and 5 zero: the
	// bitmap is bytes 32-33 and digests start at 34.
	good := encode(t, build(t, disk(1, 10*4096+1000, 4096, 0, 2, 5), 4096))
	put16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint16(b[off:], v); return resum(b) }
	}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return resum(b) }
	}
	put64 := func(off int, v uint64) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint64(b[off:], v); return resum(b) }
	}
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   error
		msg    string
	}{
		{"empty", func(b []byte) []byte { return nil }, ErrCorrupt, "0 bytes"},
		{"header only", func(b []byte) []byte { return b[:35] }, ErrCorrupt, "35 bytes"},
		{"magic", func(b []byte) []byte { b[3] = 'x'; return resum(b) }, ErrCorrupt, "magic at offset 0"},
		{"version 0", put16(8, 0), ErrVersion, "version at offset 8 is 0"},
		{"version 2", put16(8, 2), ErrVersion, "version at offset 8 is 2"},
		{"flipped checksum", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, ErrCorrupt, "checksum at offset 162"},
		{"flipped digest bit", func(b []byte) []byte { b[100] ^= 4; return b }, ErrCorrupt, "checksum at offset 162"},
		{"truncated by one", func(b []byte) []byte { return b[:len(b)-1] }, ErrCorrupt, "checksum at offset 161"},
		{"truncated, checksum redone", func(b []byte) []byte { return resum(b[:len(b)-16]) }, ErrCorrupt, "length is 150 bytes"},
		{"extra bytes, checksum redone", func(b []byte) []byte { return resum(append(b, make([]byte, 16)...)) }, ErrCorrupt, "length is 182 bytes"},
		{"hash id 0", func(b []byte) []byte { b[10] = 0; return resum(b) }, ErrUnknownHash, "hash id at offset 10 is 0"},
		{"hash id 9", func(b []byte) []byte { b[10] = 9; return resum(b) }, ErrUnknownHash, "hash id at offset 10 is 9"},
		{"reserved", func(b []byte) []byte { b[11] = 1; return resum(b) }, ErrCorrupt, "reserved byte at offset 11"},
		{"block size not a power of two", put32(12, 12288), ErrCorrupt, "block size at offset 12 is 12288"},
		{"block size too small", put32(12, 2048), ErrCorrupt, "block size at offset 12 is 2048"},
		{"block size too large", put32(12, 1<<30), ErrCorrupt, "block size at offset 12"},
		{"block size 0", put32(12, 0), ErrCorrupt, "block size at offset 12 is 0"},
		{"block size other", put32(12, 8192), ErrCorrupt, "is 8, more than the 6 blocks"},
		{"disk size above int64", put64(16, 1<<63), ErrCorrupt, "disk size at offset 16"},
		{"disk size too many blocks", put64(16, 1<<40), ErrCorrupt, "disk size at offset 16"},
		{"disk size one block more", put64(16, 11*4096+1), ErrCorrupt, "is 8, the zero bitmap at offset 32 gives 9"},
		{"disk size 0", put64(16, 0), ErrCorrupt, "is 8, more than the 0 blocks"},
		{"non-zero count above blocks", put64(24, 12), ErrCorrupt, "non-zero block count at offset 24 is 12"},
		{"non-zero count huge", put64(24, 1<<62), ErrCorrupt, "non-zero block count at offset 24"},
		{"non-zero count lower", put64(24, 7), ErrCorrupt, "length is 166 bytes"},
		{"bitmap padding bit", func(b []byte) []byte { b[33] |= 0x80; return resum(b) }, ErrCorrupt, "zero bitmap byte at offset 33"},
		{"bitmap disagrees with count", func(b []byte) []byte { b[32] |= 0x02; return resum(b) }, ErrCorrupt, "zero bitmap at offset 32 gives 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Unmarshal(tc.mutate(bytes.Clone(good)))
			if !errors.Is(err, tc.want) || m != nil {
				t.Fatalf("Unmarshal = %v, %v; want nil, %v", m, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
	if _, err := Unmarshal(good); err != nil {
		t.Fatalf("the unmutated map fails: %v", err)
	}
}
