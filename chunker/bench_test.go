package chunker

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

const benchFileSize = 1 << 30

// benchFile writes a 1 GiB file of seeded random data (every block
// non-zero) into dir, syncs it and returns it opened for reading.
func benchFile(b *testing.B) *os.File {
	b.Helper()
	path := filepath.Join(b.TempDir(), "disk.img")
	w, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{42})
	buf := make([]byte, 1<<20)
	for range benchFileSize / len(buf) {
		_, _ = rng.Read(buf)
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// dropCache asks the kernel to forget f's cached pages (they are clean
// after Sync), so the next pass reads from the device. Outside the timer.
func dropCache(b *testing.B, f *os.File) {
	b.StopTimer()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatalf("fadvise DONTNEED: %v", err)
	}
	b.StartTimer()
}

// modes: "cached" reads the file from the page cache (it was just
// written); "cold" drops its pages before every pass.
var modes = []string{"cached", "cold"}

func BenchmarkBuild(b *testing.B) {
	f := benchFile(b)
	for _, mode := range modes {
		for _, bs := range []int{64 << 10, 256 << 10, 1 << 20} {
			b.Run(mode+"/"+sizeName(bs), func(b *testing.B) {
				b.SetBytes(benchFileSize)
				for b.Loop() {
					if mode == "cold" {
						dropCache(b, f)
					}
					if _, err := Build(context.Background(), f, benchFileSize, bs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSequentialRead is the I/O ceiling for BenchmarkBuild: one
// reader, plain 1 MiB reads from start to end of the same kind of file.
func BenchmarkSequentialRead(b *testing.B) {
	f := benchFile(b)
	buf := make([]byte, 1<<20)
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(benchFileSize)
			for b.Loop() {
				if mode == "cold" {
					dropCache(b, f)
				}
				for off := int64(0); off < benchFileSize; off += int64(len(buf)) {
					if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkBuildRunSize varies how much each worker reads per ReadAt.
func BenchmarkBuildRunSize(b *testing.B) {
	f := benchFile(b)
	defer func(v int) { runBytes = v }(runBytes)
	for _, mode := range modes {
		for _, run := range []int{512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 32 << 20} {
			b.Run(mode+"/run="+sizeName(run), func(b *testing.B) {
				runBytes = run
				b.SetBytes(benchFileSize)
				for b.Loop() {
					if mode == "cold" {
						dropCache(b, f)
					}
					if _, err := Build(context.Background(), f, benchFileSize, DefaultBlockSize); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBlockSizeTradeoff reports, per block size, the encoded map size
// of a 100 GiB disk with no zero blocks and the bytes a resync sends after
// 10,000 4 KiB writes to a 4 GiB disk: uniformly scattered, and with 80%
// of them in a hot 10% of the disk. Computed, not timed.
func BenchmarkBlockSizeTradeoff(b *testing.B) {
	const disk100G, disk4G, writes = 100 << 30, 4 << 30, 10000
	for _, bs := range []int{64 << 10, 256 << 10, 1 << 20} {
		b.Run(sizeName(bs), func(b *testing.B) {
			var uniform, hot int
			for b.Loop() {
				uniform = touched(rand.New(rand.NewPCG(1, 2)), disk4G, bs, writes, 0)
				hot = touched(rand.New(rand.NewPCG(1, 2)), disk4G, bs, writes, 0.8)
			}
			n := blockCount(disk100G, bs)
			b.ReportMetric(float64(headerSize+(n+7)/8+16*n+trailer), "map-bytes-100GiB")
			b.ReportMetric(float64(uniform*bs)/(1<<20), "MiB-sent-uniform")
			b.ReportMetric(float64(hot*bs)/(1<<20), "MiB-sent-hot80/10")
		})
	}
}

// touched counts the distinct blocks hit by 4 KiB-aligned 4 KiB writes;
// a fraction hot of them land in the first tenth of the disk.
func touched(rng *rand.Rand, size int64, bs, writes int, hot float64) int {
	seen := make(map[int64]bool)
	pages := size / 4096
	for range writes {
		span := pages
		if rng.Float64() < hot {
			span = pages / 10
		}
		seen[rng.Int64N(span)*4096/int64(bs)] = true
	}
	return len(seen)
}
