package chunker

import (
	"crypto/sha256"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/zeebo/blake3"
	"github.com/zeebo/xxh3"
)

// BenchmarkHash compares the candidate block hashes on this machine; the
// figures behind the choice of xxh3-128 are recorded in doc.go.
func BenchmarkHash(b *testing.B) {
	hashes := []struct {
		name string
		sum  func([]byte) []byte
	}{
		{"xxh3-128", func(p []byte) []byte { s := xxh3.Hash128(p).Bytes(); return s[:] }},
		{"blake3-256", func(p []byte) []byte { s := blake3.Sum256(p); return s[:] }},
		{"sha256", func(p []byte) []byte { s := sha256.Sum256(p); return s[:] }},
	}
	for _, size := range []int{64 << 10, 1 << 20} {
		buf := make([]byte, size)
		rng := rand.New(rand.NewChaCha8([32]byte{1}))
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		for _, h := range hashes {
			b.Run(h.name+"/"+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					h.sum(buf)
				}
			})
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}
