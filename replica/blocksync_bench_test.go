package replica

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// BenchmarkSyncBlocks is a failback's block sync on local files: two
// sparse 256 MiB fixed VHDs with the same random data in 40% of their
// 2 MiB blocks, and 1% of the 64 KiB blocks of the source (the recovered
// disk) rewritten at random. Each iteration compares every block and
// writes the differing ones to the sink; before it, the sink gets those
// blocks' old content back (untimed). Both files are in the page cache.
func BenchmarkSyncBlocks(b *testing.B) {
	const (
		size  = int64(256 << 20)
		chunk = int64(2 << 20)
	)
	dir := b.TempDir()
	src, err := vhd.CreateFixed(filepath.Join(dir, "src.vhd"), size)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := vhd.CreateFixed(filepath.Join(dir, "dst.vhd"), size)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	if src.Size() != size || dst.Size() != size {
		b.Fatalf("disks of %d and %d bytes, want %d", src.Size(), dst.Size(), size)
	}

	// ChaCha8 fills buffers fast; rng picks the blocks.
	fill := rand.NewChaCha8([32]byte{1, 2, 3})
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		if (off/chunk)%5 >= 2 {
			continue // 2 of every 5 chunks allocated: 40%
		}
		fill.Read(buf)
		if _, err := src.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		if _, err := dst.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}

	// 1% of the blocks, anywhere (allocated or not), get new content in
	// the source; old keeps the sink's content to undo a sync with.
	nblk := int(size / BlockSize)
	picked := rng.Perm(nblk)[:nblk/100]
	changed := int64(len(picked)) * BlockSize
	old := make([]byte, changed)
	blk := make([]byte, BlockSize)
	for k, i := range picked {
		off := int64(i) * BlockSize
		if _, err := dst.ReadAt(old[int64(k)*BlockSize:int64(k+1)*BlockSize], off); err != nil {
			b.Fatal(err)
		}
		fill.Read(blk)
		if _, err := src.WriteAt(blk, off); err != nil {
			b.Fatal(err)
		}
	}
	// No writeback of the setup during the timed syncs.
	if err := src.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := dst.Sync(); err != nil {
		b.Fatal(err)
	}
	redirty := func() {
		for k, i := range picked {
			if _, err := dst.WriteAt(old[int64(k)*BlockSize:int64(k+1)*BlockSize], int64(i)*BlockSize); err != nil {
				b.Fatal(err)
			}
		}
		if err := dst.Sync(); err != nil {
			b.Fatal(err)
		}
	}

	ctx := context.Background()
	sink := FileSink(dst)
	save := func() error { return nil }
	var sent int64
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 {
			b.StopTimer()
			redirty()
			b.StartTimer()
		}
		rd := &vault.ResyncDisk{Name: "os", Full: true, ReadReplica: true, Total: size}
		if err := SyncBlocks(ctx, Sync{Src: src, SrcName: "src", Size: size, Sink: sink, SinkDesc: "dst", Save: save}, rd); err != nil {
			b.Fatal(err)
		}
		if rd.Sent != changed || rd.Compared != size || !rd.Done {
			b.Fatalf("iteration %d: sent %d, compared %d, done %v; want %d, %d, true", i, rd.Sent, rd.Compared, rd.Done, changed, size)
		}
		sent += rd.Sent
	}
	b.StopTimer()
	b.ReportMetric(float64(sent)/float64(b.N), "sent-bytes/op")
	if !sameContent(b, src, dst, size) {
		b.Fatal("the sink differs from the source after the sync")
	}
}

// sameContent compares two disks' first size bytes in 4 MiB reads.
func sameContent(b *testing.B, x, y io.ReaderAt, size int64) bool {
	b.Helper()
	p, q := make([]byte, 4<<20), make([]byte, 4<<20)
	for off := int64(0); off < size; off += int64(len(p)) {
		if _, err := x.ReadAt(p, off); err != nil {
			b.Fatal(err)
		}
		if _, err := y.ReadAt(q, off); err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(p, q) {
			return false
		}
	}
	return true
}
