package replica

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/asr-project/asr/chunker"
	"github.com/asr-project/asr/replica/target"
)

// testEvents logs the engine's events into the test's output.
type testEvents struct{ t *testing.T }

func (testEvents) Progress(vm, step string, done, total int64) {}
func (l testEvents) Event(vm, msg string)                      { l.t.Log(vm + ": " + msg) }
func (l testEvents) Warning(vm, msg string)                    { l.t.Log(vm + ": warning: " + msg) }

// remote is a directory target that says it is not local, so the engine
// keeps a checksum map beside each replica as it does on Azure.
type remote struct{ target.Target }

func (remote) Local() bool { return false }

// The initial copy makes the replica's checksum map, and every apply
// keeps it exact: after the copy and after cycles of
// whole-block, part-block and zero writes, the stored map is the map of
// the replica, byte for byte, and a resync against it reads nothing back.
func TestApplyKeepsTheMapExact(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	open := f.e.OpenTarget
	f.e.OpenTarget = func(ctx context.Context, url string) (target.Target, error) {
		tg, err := open(ctx, url)
		return remote{tg}, err
	}
	f.e.Events = testEvents{t}
	f.protect(t, "") // the initial copy makes the first map
	ctx := context.Background()
	for i, w := range []struct {
		off int64
		n   int
		b   byte
	}{{0, 0, 0}, {0, 64 << 10, 1}, {3<<20 + 512, 4096, 2}, {1 << 20, 192 << 10, 3}, {0, 64 << 10, 0}, {5<<20 - 100, 300, 4}} {
		if w.n > 0 {
			f.write(t, w.off, w.n, w.b)
			f.now = f.now.Add(time.Minute)
			if _, err := f.e.Replicate(ctx, []string{"web"}); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
		}
		it, _ := f.item(t)
		d := it.Disks[0]
		tg, _ := f.e.OpenTarget(ctx, f.target)
		stored, err := tg.GetObject(ctx, mapPrefix("web", d.Name)+d.MapDigest)
		if err != nil || d.MapPoint != "" {
			t.Fatalf("cycle %d: map %q (point %q): %v", i, d.MapDigest, d.MapPoint, err)
		}
		img := make([]byte, d.ReplicaSize)
		tg.ReadAt(ctx, d.Replica, "", img, 0)
		want, _ := chunker.Build(ctx, bytes.NewReader(img), d.ReplicaSize, blockSize)
		wb, _ := want.MarshalBinary()
		if !bytes.Equal(stored, wb) {
			t.Fatalf("cycle %d: the stored map is not the replica's", i)
		}
		tg.Close()
	}
	f.untracked(t, 2<<20, 64<<10, 9)
	f.now = f.now.Add(time.Minute)
	res, err := f.e.Resync(ctx, []string{"web"}, false)
	if err != nil || res[0].Bytes != 64<<10 || res[0].ReadBack != 0 {
		t.Fatalf("resync against the map: %+v, %v", res, err)
	}
	f.replicaEquals(t)
}
