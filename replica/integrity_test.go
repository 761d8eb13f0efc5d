package replica

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// exported checks that the VM's latest point, read from the target's
// snapshot, equals the source disk byte for byte.
func (f *fixture) exported(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	tg, err := f.e.OpenTarget(ctx, f.target)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	it, _ := f.item(t)
	want := readDisk(t, f.disk)
	got := make([]byte, len(want))
	if err := tg.ReadAt(ctx, it.Disks[0].Replica, it.LastPoint, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("point %s differs from the source disk", it.LastPoint)
	}
}

func readDisk(t *testing.T, path string) []byte {
	t.Helper()
	d, err := vhd.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b := make([]byte, d.Size())
	if _, err := d.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidLogsApplyWhateverTheirSize(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	f.trackOpt.MaxLogBytes = 1 << 30 // an operator with room to spare
	f.protect(t, "")
	for i := range 14 { // 14 MiB of logs on an 8 MiB disk, 1 MiB unique
		f.write(t, 2<<20, 1<<20, byte(i))
	}
	f.now = f.now.Add(time.Minute)
	res, err := f.e.Replicate(context.Background(), []string{"web"})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Bytes != 1<<20 {
		t.Fatalf("shipped %d bytes, want the 1 MiB that is unique", res[0].Bytes)
	}
	f.exported(t)
}

func TestStaleLogsAreSetAside(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	// A log left from an earlier protection (or another tool) beside the disk.
	stale := tracker.LogPath(f.disk, 1)
	if err := os.WriteFile(stale, []byte("not ours"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.protect(t, "")
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale log still beside the disk: %v", err)
	}
	moved, _ := filepath.Glob(f.disk + ".asr-stale/*/os.vhd.00000001.hrl")
	if len(moved) != 1 {
		t.Fatalf("stale log not kept aside: %v", moved)
	}
	f.write(t, 0, 4096, 0x33)
	f.now = f.now.Add(time.Minute)
	if _, err := f.e.Replicate(context.Background(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	f.exported(t)
}

func TestALogFromAnotherDiskIsNeverApplied(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	f.protect(t, "")
	// A second VM's disk, protected and written: its log has its own chain.
	other := newFixture(t, NewPolicy(DefaultPolicy))
	other.protect(t, "")
	other.write(t, 0, 4096, 0x77)
	it, _ := f.item(t)
	data, err := os.ReadFile(tracker.LogPath(other.disk, it.Disks[0].AppliedSeq+1))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tracker.LogPath(f.disk, it.Disks[0].AppliedSeq+1), data, 0o600); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Minute)
	_, err = f.e.Replicate(context.Background(), []string{"web"})
	if !errors.Is(err, ErrResync) {
		t.Fatalf("got %v, want ErrResync", err)
	}
	if it, pts := f.item(t); it.State != vault.StateResyncRequired || len(pts) != 1 {
		t.Fatalf("item %s with %d points after a foreign log", it.State, len(pts))
	}
}

// A tracker that starts while a cycle has recorded its point but not yet
// deleted the logs must number its log past them, or its writes would be
// deleted as leftovers.
func TestTrackerStartingMidCycleKeepsItsWrites(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	f.protect(t, "")
	f.write(t, 0, 4096, 0x11)
	defer func(old func(string)) { crashpoint = old }(crashpoint)
	crashpoint = func(step string) {
		if step == "recorded" {
			crashpoint = func(string) {}
			f.write(t, 1<<20, 4096, 0x22)
		}
	}
	f.now = f.now.Add(time.Minute)
	if _, err := f.e.Replicate(context.Background(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Hour)
	f.now = f.now.Add(time.Minute)
	if _, err := f.e.Replicate(context.Background(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	f.exported(t)
}

// StartTracker reads where the chain stands only once it holds the lock:
// a cycle that held the lock, recorded its point and deleted its logs
// meanwhile can't leave the tracker numbering from before.
func TestStartTrackerReadsTheChainUnderTheLock(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	f.protect(t, "")
	f.write(t, 0, 4096, 0x11)
	lock, err := f.e.lockTracker("web")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *Tracking)
	go func() {
		tr, err := f.e.StartTracker("web", 10*time.Second, f.trackOpt)
		if err != nil {
			t.Error(err)
		}
		started <- tr
	}()
	time.Sleep(200 * time.Millisecond) // StartTracker waits for the lock now
	// What a cycle does while it holds the lock: apply, record, delete.
	it, _ := f.item(t)
	logs, _ := tracker.Logs(f.disk)
	it.Disks[0].AppliedSeq = logs[len(logs)-1].Seq
	if err := f.e.saveItem(&it); err != nil {
		t.Fatal(err)
	}
	tracker.RemoveShipped(f.disk, it.Disks[0].AppliedSeq)
	lock.Unlock()
	tr := <-started
	if tr == nil {
		t.FailNow()
	}
	defer tr.Close()
	if _, err := os.Stat(tracker.LogPath(f.disk, it.Disks[0].AppliedSeq+1)); err != nil {
		t.Fatalf("the tracker did not number its log after the applied one: %v", err)
	}
}
