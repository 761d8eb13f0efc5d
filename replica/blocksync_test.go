package replica

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// TestSyncBlocks syncs a raw disk into another whose size is not a
// multiple of the block: only the differing blocks are written, the sink
// ends equal to the source, and a sync stopped after it sent (its save
// failing, as a kill would stop it) goes on from its checkpoint without
// counting a block twice.
func TestSyncBlocks(t *testing.T) {
	const size = 3<<20 + 512
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	dst := bytes.Clone(src)
	var changed int64
	for _, off := range []int{0, 5 * BlockSize, 6 * BlockSize, size - 100} {
		dst[off] ^= 0xff
		changed += BlockSize
	}
	srcPath, dstPath := filepath.Join(dir, "src.raw"), filepath.Join(dir, "dst.raw")
	if err := os.WriteFile(srcPath, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dstPath, dst, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := vhd.OpenAs(srcPath, vhd.FormatRaw)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := vhd.OpenWritableAs(dstPath, vhd.FormatRaw)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	rd := &vault.ResyncDisk{Name: "os", Full: true, Total: size}
	killed := errors.New("killed")
	saves := 0
	var saved vault.ResyncDisk // what a kill leaves in the state file
	// The first save is the one before the first send; the second is
	// the checkpoint after it: fail there, as a kill after sending would.
	save := func() error {
		saves++
		if saves == 2 {
			return killed
		}
		saved = *rd
		return nil
	}
	ctx := context.Background()
	if err := SyncBlocks(ctx, Sync{Src: s, SrcName: "src", Size: size, Sink: FileSink(d), SinkDesc: "dst", Save: save}, rd); !errors.Is(err, killed) {
		t.Fatalf("first run: %v, want the save's error", err)
	}
	rd = &saved
	if rd.Sent != changed || rd.Done || rd.Next != 0 {
		t.Fatalf("after the first run: sent %d, next %d, done %v; want %d sent, at 0, not done", rd.Sent, rd.Next, rd.Done, changed)
	}
	if err := SyncBlocks(ctx, Sync{Src: s, SrcName: "src", Size: size, Sink: FileSink(d), SinkDesc: "dst", Save: func() error { return nil }}, rd); err != nil {
		t.Fatal(err)
	}
	if rd.Sent != changed || !rd.Done || rd.Compared != 49*BlockSize {
		t.Fatalf("after the rerun: sent %d, compared %d, done %v; want %d, %d, true", rd.Sent, rd.Compared, rd.Done, changed, 49*BlockSize)
	}
	got, err := os.ReadFile(dstPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatal("the sink differs from the source after the sync")
	}
}
