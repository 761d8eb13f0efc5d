package hrl

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

var benchSizes = []int{4 << 10, 64 << 10, 1 << 20}

func benchData(size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(size), 1))
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// BenchmarkAppend: Writer.Write of one size, Close (with its fsyncs)
// included in the time. Compare with BenchmarkPlainWrite.
func BenchmarkAppend(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			p := benchData(size)
			w, err := Create(filepath.Join(b.TempDir(), "a.hrl"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := range b.N {
				if err := w.Write(int64(i%4096)*int64(size), p); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkPlainWrite is the baseline: sequential os.File writes of the
// same sizes, then fsync and close.
func BenchmarkPlainWrite(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			p := benchData(size)
			f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				if _, err := f.Write(p); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkOpenCoalesce reads, validates and coalesces a ~256 MiB log in
// which half the data overwrites earlier writes (4-128 KiB writes over a
// 128 MiB region). Bytes/op is the log file size.
func BenchmarkOpenCoalesce(b *testing.B) {
	const total, region = 256 << 20, 128 << 20
	path := filepath.Join(b.TempDir(), "big.hrl")
	w, err := Create(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	p := benchData(128 << 10)
	var fresh, written int64
	for written < total {
		n := int64(1+rng.IntN(32)) * 4096
		off := fresh
		if fresh >= region || (fresh > 0 && rng.IntN(2) == 0) {
			off = rng.Int64N(min(fresh, region-n)/4096+1) * 4096
		} else {
			n = min(n, region-fresh)
			fresh += n
		}
		if err := w.Write(off, p[:n]); err != nil {
			b.Fatal(err)
		}
		written += n
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	var extents, entries int
	for b.Loop() {
		l, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		extents, entries = len(Coalesce([]*Log{l})), len(l.Entries)
	}
	b.ReportMetric(float64(entries), "entries")
	b.ReportMetric(float64(extents), "extents")
}

// BenchmarkByteSum: the checksum kernel every data byte passes through on
// write and on read.
func BenchmarkByteSum(b *testing.B) {
	p := benchData(1 << 20)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		byteSum(p)
	}
}
