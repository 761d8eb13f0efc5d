package file

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

// The steady state of a replicate cycle on a replica that is full of data
// and has a recovery point: 512 MiB of distinct random 64 KiB granules in
// the engine's 32 MiB batches, every pre-image real data to keep. The
// peer writes the same offsets in the same order into a plain file of the
// same content and fsyncs once. Page caches are dropped before each run when
// ASR_BENCH_COLD=1 (root only), as a replica bigger than memory would be.
const (
	benchDisk  = 2 << 30
	benchCycle = 512 << 20
	benchBatch = 32 << 20
)

func benchCycleWrites() []target.Write {
	r := rand.New(rand.NewPCG(1, 2))
	gs := r.Perm(benchDisk / granule)[:benchCycle/granule]
	p := make([]byte, granule)
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	ws := make([]target.Write, len(gs))
	for i, g := range gs {
		ws[i] = target.Write{Off: int64(g) * granule, P: p}
	}
	return ws
}

func fillFile(b *testing.B, path string) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for off := int64(0); off < benchDisk; off += int64(len(buf)) {
		for i := range buf {
			buf[i] = byte(r.Uint32() | 1)
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}

func dropCaches(b *testing.B) {
	if os.Getenv("ASR_BENCH_COLD") != "1" {
		return
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		b.Fatalf("ASR_BENCH_COLD=1: %v", err)
	}
}

func BenchmarkApplyCycle(b *testing.B) {
	ctx := context.Background()
	ws := benchCycleWrites()
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		tg, err := New(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := tg.CreateDisk(ctx, "d", benchDisk); err != nil {
			b.Fatal(err)
		}
		fillFile(b, tg.vhdPath("d"))
		if err := tg.Snapshot(ctx, "d", "p1"); err != nil {
			b.Fatal(err)
		}
		dropCaches(b)
		b.StartTimer()
		for i := 0; i < len(ws); i += benchBatch / granule {
			if err := tg.WriteBatch(ctx, "d", ws[i:min(i+benchBatch/granule, len(ws))]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(benchCycle)
}

func BenchmarkApplyCyclePeer(b *testing.B) {
	ws := benchCycleWrites()
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "plain")
		fillFile(b, path)
		dropCaches(b)
		b.StartTimer()
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, w := range ws {
			if _, err := f.WriteAt(w.P, w.Off); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	b.SetBytes(benchCycle)
}
