package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/file"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

type fixture struct {
	e      *Engine
	dir    string
	disk   string
	target string
	now    time.Time
	// trackOpt configures the trackers write starts.
	trackOpt tracker.Options
}

// newFixture makes a site with one 8 MiB fixed VHD holding some data and a
// file target; the engine's clock is f.now.
func newFixture(t *testing.T, pol vault.Policy) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), now: time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)}
	v, err := vault.Init(filepath.Join(f.dir, "site.db"), "primary", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Update(func(tx *vault.Tx) error { return tx.PutPolicy(pol) }); err != nil {
		t.Fatal(err)
	}
	f.disk = filepath.Join(f.dir, "os.vhd")
	d, err := vhd.CreateFixed(f.disk, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	d.WriteAt([]byte("hello"), 1<<20)
	d.Close()
	f.target = "file://" + filepath.Join(f.dir, "target")
	f.e = &Engine{Vault: v, Now: func() time.Time { return f.now },
		OpenTarget: func(ctx context.Context, url string) (target.Target, error) {
			return target.Open(ctx, url, target.Config{})
		}}
	return f
}

func (f *fixture) protect(t *testing.T, pol string) {
	t.Helper()
	if _, err := f.e.EnableProtection(context.Background(), Protect{VM: "web", Disks: []string{f.disk}, Target: f.target, Policy: pol}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) item(t *testing.T) (it vault.Item, pts []vault.Point) {
	t.Helper()
	err := f.e.Vault.View(func(tx *vault.Tx) (err error) {
		if it, err = tx.Item("web"); err != nil {
			return err
		}
		pts, err = tx.Points("web")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return it, pts
}

// write logs n bytes of b at off through the tracker and seals the log.
func (f *fixture) write(t *testing.T, off int64, n int, b byte) {
	t.Helper()
	tr, err := f.e.StartTracker("web", time.Second, f.trackOpt)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, n)
	for i := range p {
		p[i] = b
	}
	if _, err := tr.Disks()[0].WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAppConsistentHooks(t *testing.T) {
	pol := NewPolicy("app")
	dir := t.TempDir()
	pol.FreezeCommand = "echo frozen >> " + dir + "/{vm}.log"
	pol.ThawCommand = "echo thawed >> " + dir + "/{vm}.log"
	f := newFixture(t, pol)
	f.protect(t, "app")
	_, pts := f.item(t)
	if len(pts) != 1 || !pts[0].AppConsistent {
		t.Fatalf("first point %+v, want app-consistent", pts)
	}
	// Within the hour the next point is crash-consistent and no hook runs.
	f.now = f.now.Add(10 * time.Minute)
	if _, err := f.e.Replicate(context.Background(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	// After the hour, a failing freeze: crash-consistent, but thaw still ran.
	f.now = f.now.Add(time.Hour)
	pol.FreezeCommand = "false"
	f.e.Vault.Update(func(tx *vault.Tx) error { return tx.PutPolicy(pol) })
	if _, err := f.e.Replicate(context.Background(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	it, pts := f.item(t)
	if len(pts) != 3 || pts[1].AppConsistent || pts[2].AppConsistent {
		t.Fatalf("points %+v: want only the first app-consistent", pts)
	}
	if it.Health != vault.HealthWarning || !strings.HasPrefix(it.HealthReason, `last app-consistent point failed: freeze command "false" failed`) {
		t.Fatalf("after a failed freeze: %s %q", it.Health, it.HealthReason)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "web.log"))
	if string(log) != "frozen\nthawed\nthawed\n" {
		t.Fatalf("hooks ran as %q", log)
	}
}

func TestPruneKeepsRetentionAndNewest(t *testing.T) {
	pol := NewPolicy("short")
	pol.Retention = time.Hour
	f := newFixture(t, pol)
	f.protect(t, "short") // t0
	for _, step := range []time.Duration{30 * time.Minute, 90 * time.Minute} {
		f.now = f.now.Add(step)
		f.write(t, 0, 4096, byte(step/time.Minute))
		if _, err := f.e.Replicate(context.Background(), []string{"web"}); err != nil {
			t.Fatal(err)
		}
	}
	// At t0+2h the cutoff is t0+1h: t0 and t0+30m go, t0+2h stays.
	it, pts := f.item(t)
	if len(pts) != 1 || pts[0].ID != it.LastPoint {
		t.Fatalf("points after prune: %+v", pts)
	}
	tg, err := file.New(filepath.Join(f.dir, "target"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, _ := tg.Snapshots(context.Background(), it.Disks[0].Replica)
	objs, _ := tg.ListObjects(context.Background(), "vms/web/points/")
	if len(snaps) != 1 || snaps[0] != it.LastPoint || len(objs) != 1 {
		t.Fatalf("target keeps snapshots %v and point objects %v", snaps, objs)
	}
}

// smallTarget reports almost no free space.
type smallTarget struct{ target.Target }

func (smallTarget) FreeSpace(context.Context) (int64, error) { return 100, nil }

func TestEnableRefusesFullTarget(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	open := f.e.OpenTarget
	f.e.OpenTarget = func(ctx context.Context, url string) (target.Target, error) {
		tg, err := open(ctx, url)
		return smallTarget{tg}, err
	}
	_, err := f.e.EnableProtection(context.Background(), Protect{VM: "web", Disks: []string{f.disk}, Target: f.target})
	if !errors.Is(err, ErrTarget) || !errors.Is(err, target.ErrNoSpace) {
		t.Fatalf("got %v, want ErrTarget and ErrNoSpace", err)
	}
	if err := f.e.Vault.View(func(tx *vault.Tx) error { _, err := tx.Item("web"); return err }); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("a refused VM was recorded: %v", err)
	}
}

func TestLogsPastTheTrackersBoundResync(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	f.protect(t, "")
	f.write(t, 0, 5<<20, 0x42) // 5 of 8 MiB: the tracker stops logging at half
	_, err := f.e.Replicate(context.Background(), []string{"web"})
	if !errors.Is(err, ErrResync) {
		t.Fatalf("got %v, want ErrResync", err)
	}
	it, pts := f.item(t)
	if it.State != vault.StateResyncRequired || it.Health != vault.HealthWarning || len(pts) != 1 {
		t.Fatalf("item %s/%s with %d points after an oversized log", it.State, it.Health, len(pts))
	}
	if !strings.Contains(it.HealthReason, "half the disk") {
		t.Fatalf("reason %q does not say why", it.HealthReason)
	}
	// Cron leaves it alone until a resync.
	res, err := f.e.Replicate(context.Background(), nil)
	if err != nil || len(res) != 1 || res[0].Skipped == "" {
		t.Fatalf("cron run: %+v, %v", res, err)
	}
}

func TestFailuresBackOffOrGoCritical(t *testing.T) {
	for _, c := range []struct {
		err    error
		health string
	}{
		{target.ErrUnavailable, vault.HealthWarning},
		{target.ErrAuth, vault.HealthCritical},
	} {
		t.Run(c.err.Error(), func(t *testing.T) {
			f := newFixture(t, NewPolicy(DefaultPolicy))
			f.protect(t, "")
			f.e.OpenTarget = func(context.Context, string) (target.Target, error) {
				return nil, fmt.Errorf("injected: %w", c.err)
			}
			f.now = f.now.Add(10 * time.Minute)
			if _, err := f.e.Replicate(context.Background(), nil); !errors.Is(err, c.err) {
				t.Fatalf("got %v, want %v", err, c.err)
			}
			it, _ := f.item(t)
			if it.Health != c.health || it.Failures != 1 {
				t.Fatalf("health %s after %d failures, want %s", it.Health, it.Failures, c.health)
			}
			// The next cron run within the back-off (or while Critical) skips.
			f.now = f.now.Add(30 * time.Second)
			res, err := f.e.Replicate(context.Background(), nil)
			if err != nil || res[0].Skipped == "" {
				t.Fatalf("second run: %+v, %v", res, err)
			}
		})
	}
}

// Finished jobs are kept a week; every replicate run prunes older ones.
func TestReplicatePrunesOldJobs(t *testing.T) {
	f := newFixture(t, NewPolicy(DefaultPolicy))
	f.protect(t, "")
	f.now = f.now.Add(JobRetention + time.Hour)
	if _, err := f.e.Replicate(context.Background(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	var jobs []vault.Job
	f.e.Vault.View(func(tx *vault.Tx) (err error) { jobs, err = tx.Jobs(); return })
	if len(jobs) != 1 || jobs[0].Kind != "replicate" {
		t.Fatalf("jobs after a week: %+v, want only the new replicate", jobs)
	}
}
