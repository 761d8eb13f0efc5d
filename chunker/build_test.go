package chunker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/zeebo/xxh3"
)

func TestBuildFlagsZeroBlocksAndHashesTheRest(t *testing.T) {
	const bs = 4 << 10
	size := int64(10*bs + 1000) // short last block of 1000 bytes
	d := disk(1, size, bs, 0, 2, 5)
	m := build(t, d, bs)
	if m.Blocks() != 11 || m.BlockSize != bs || m.Size != size || m.Hash != HashXXH3 {
		t.Fatalf("geometry = %d blocks, bs %d, size %d, hash %d", m.Blocks(), m.BlockSize, m.Size, m.Hash)
	}
	if got := len(m.sums); got != 8*16 {
		t.Fatalf("stored %d digest bytes, want 8 non-zero blocks * 16", got)
	}
	rank := m.ranks()
	for i := range 11 {
		blk := d[i*bs : min(i*bs+bs, len(d))]
		wantZero := i == 0 || i == 2 || i == 5
		if m.Zero(i) != wantZero {
			t.Fatalf("block %d: Zero = %v, want %v", i, m.Zero(i), wantZero)
		}
		if wantZero {
			continue
		}
		want := xxh3.Hash128(blk).Bytes()
		if got := m.sumAt(rank, i); !bytes.Equal(got, want[:]) {
			t.Fatalf("block %d digest %x, want %x", i, got, want)
		}
	}
	if m.Zero(-1) || m.Zero(11) || m.Zero(1<<20) {
		t.Fatal("Zero out of range reported true")
	}
}

// Runs of 1 MiB blocks hold 8 blocks, so zero flags of neighbouring runs
// share one bitmap word and are set by different workers.
func TestBuildManyRunsMatchesSerialHashes(t *testing.T) {
	const bs = 1 << 20
	size := int64(41*bs - 7)
	d := disk(2, size, bs, 7, 8, 15, 16, 24, 40)
	m := build(t, d, bs)
	rank := m.ranks()
	for i := range m.Blocks() {
		blk := d[i*bs : min(i*bs+bs, len(d))]
		zero := bytes.Count(blk, []byte{0}) == len(blk)
		if m.Zero(i) != zero {
			t.Fatalf("block %d: Zero = %v, want %v", i, m.Zero(i), zero)
		}
		if !zero {
			want := xxh3.Hash128(blk).Bytes()
			if got := m.sumAt(rank, i); !bytes.Equal(got, want[:]) {
				t.Fatalf("block %d digest %x, want %x", i, got, want)
			}
		}
	}
}

func TestBuildDefaultBlockSizeAndEmptyDisk(t *testing.T) {
	m, err := Build(context.Background(), bytes.NewReader(nil), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.BlockSize != DefaultBlockSize || m.Blocks() != 0 {
		t.Fatalf("empty disk: bs %d, %d blocks", m.BlockSize, m.Blocks())
	}
}

func TestBuildRejectsBadArguments(t *testing.T) {
	r := bytes.NewReader(make([]byte, 1<<16))
	for _, tc := range []struct {
		size int64
		bs   int
	}{
		{1 << 16, 1000}, {1 << 16, 2048}, {1 << 16, 32 << 20}, {1 << 16, -4096}, {-1, 4096},
		{1 << 62, 4096},
	} {
		_, err := Build(context.Background(), r, tc.size, tc.bs)
		if !errors.Is(err, ErrArgument) {
			t.Errorf("Build(size %d, bs %d) = %v, want ErrArgument", tc.size, tc.bs, err)
		}
	}
}

func TestBuildShortReadAndReadError(t *testing.T) {
	d := disk(3, 3*4096, 4096)
	_, err := Build(context.Background(), bytes.NewReader(d), int64(len(d))+1, 4096)
	if !errors.Is(err, ErrShortRead) {
		t.Fatalf("reader shorter than size: %v, want ErrShortRead", err)
	}
	boom := errors.New("device gone")
	_, err = Build(context.Background(), failingReader{boom}, 1<<20, 4096)
	if !errors.Is(err, boom) {
		t.Fatalf("read error: %v, want it wrapped", err)
	}
}

func TestBuildStopsOnCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, size := range []int64{0, 1 << 20} {
		_, err := Build(ctx, bytes.NewReader(make([]byte, size)), size, 4096)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("size %d: %v, want context.Canceled", size, err)
		}
	}
}

type failingReader struct{ err error }

func (f failingReader) ReadAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("read at %d: %w", off, f.err)
}

var _ io.ReaderAt = failingReader{}
