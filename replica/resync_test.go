package replica

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// untracked writes b at off straight into the source file, as a VM run
// without asr would, and moves its time past the tracker's stamp.
func (f *fixture) untracked(t *testing.T, off int64, n int, b byte) {
	t.Helper()
	d, err := vhd.OpenWritable(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteAt(bytes.Repeat([]byte{b}, n), off); err != nil {
		t.Fatal(err)
	}
	d.Close()
	later := time.Now().Add(time.Minute)
	os.Chtimes(f.disk, later, later)
}

// replicaEquals fails unless the live replica holds the source's bytes.
func (f *fixture) replicaEquals(t *testing.T) {
	t.Helper()
	src, err := vhd.Open(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want := make([]byte, src.Size())
	src.ReadAt(want, 0)
	tg, err := target.Open(context.Background(), f.target, target.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	it, _ := f.item(t)
	got := make([]byte, len(want))
	if err := tg.ReadAt(context.Background(), it.Disks[0].Replica, it.LastPoint, got, 0); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("the newest point %s differs from the source at %d: %#x, want %#x", it.LastPoint, i, got[i], want[i])
		}
	}
}

// Cron runs a pending resync only inside the policy's window; until then
// it says when, and status agrees.
func TestResyncWaitsForItsWindow(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy)) // window 18:30-06:00
	f.now = time.Date(2026, 1, 5, 11, 0, 0, 0, time.Local)
	f.protect(t, "")
	f.untracked(t, 1<<20, 64<<10, 0x42)
	f.now = f.now.Add(time.Hour)
	if _, err := f.e.Replicate(context.Background(), nil); !errors.Is(err, ErrResync) {
		t.Fatalf("got %v, want ErrResync", err)
	}
	res, err := f.e.Replicate(context.Background(), nil)
	if err != nil || len(res) != 1 || res[0].Skipped != "resync required, runs at 18:30" {
		t.Fatalf("cron at 12:00: %+v, %v", res, err)
	}
	st, _ := f.e.Statuses(nil)
	if want := time.Date(2026, 1, 5, 18, 30, 0, 0, time.Local); !st[0].ResyncAt.Equal(want) {
		t.Fatalf("status says the resync runs at %s, want %s", st[0].ResyncAt, want)
	}
	f.now = time.Date(2026, 1, 5, 18, 31, 0, 0, time.Local)
	res, err = f.e.Replicate(context.Background(), nil)
	if err != nil || res[0].Point == "" || res[0].Bytes != 64<<10 {
		t.Fatalf("cron at 18:31: %+v, %v", res, err)
	}
	it, pts := f.item(t)
	if it.State != vault.StateProtected || it.Health != vault.HealthNormal || len(pts) != 2 {
		t.Fatalf("after the resync: %s/%s with %d points", it.State, it.Health, len(pts))
	}
	f.replicaEquals(t)
}

// The VM writes while the resync reads it: the compare sends what it read,
// the logs carry what changed after, and the first point is exact.
func TestResyncWhileTheVMWrites(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	f.protect(t, "")
	f.write(t, 0, 64<<10, 0x01)
	f.now = f.now.Add(time.Minute)
	f.e.Replicate(context.Background(), []string{"web"})
	f.now = f.now.Add(time.Minute)
	f.untracked(t, 2<<20, 1<<20, 0x02)
	tr, err := f.e.StartTracker("web", time.Second, f.trackOpt)
	if err != nil {
		t.Fatal(err)
	}
	_, sock := tracker.Paths(f.e.TrackDir(), "web")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go tracker.ServeControl(l, tr.Tracker)
	defer func() { l.Close(); tr.Close() }()
	if _, err := f.e.Replicate(context.Background(), []string{"web"}); !errors.Is(err, ErrResync) {
		t.Fatalf("got %v, want ErrResync (changed while untracked)", err)
	}
	f.now = f.now.Add(time.Minute)
	wrote := 0
	defer func(old func(string)) { crashpoint = old }(crashpoint)
	crashpoint = func(step string) {
		if step != "resync-read" || wrote > 0 {
			return
		}
		// After the compare read these blocks, before it sends them.
		for _, off := range []int64{2 << 20, 2<<20 + 4096, 6 << 20} {
			if _, err := tr.Disks()[0].WriteAt(bytes.Repeat([]byte{0x03}, 4096), off); err != nil {
				t.Error(err)
			}
			wrote++
		}
	}
	res, err := f.e.Resync(context.Background(), []string{"web"}, false)
	if err != nil || wrote != 3 {
		t.Fatalf("resync: %+v, %v (%d writes during it)", res, err, wrote)
	}
	if !strings.Contains(res[0].Point, "T") {
		t.Fatalf("no point after the resync: %+v", res[0])
	}
	f.replicaEquals(t)
}
