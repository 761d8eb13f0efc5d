package failover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// ErrState: the item's state does not allow the command; the message says
// what state it is in and what to run instead.
var ErrState = errors.New("not allowed in this state")

// Kinds of failover.
const (
	KindTest      = "test"
	KindPlanned   = "planned"
	KindUnplanned = "unplanned"
)

// Steps of a failover, in order; Failover.Step is the next one to run.
const (
	stepShutdown = "shutdown" // planned: shut the source VM down
	stepFinal    = "final"    // planned: replicate its last writes
	stepDisks    = "disks"    // make the recovery disks from the point
	stepStart    = "start"    // start the VM at the recovery site
	stepDone     = "done"
	stepCleanup  = "cleanup" // test: being removed
)

// Runner runs the failovers of one site.
type Runner struct {
	Engine *replica.Engine
	// Host returns the host driver for an item (the site's, with the
	// item's overrides) and the driver's name.
	Host func(it vault.Item) (host.Host, string, error)
	// Dir is the recovery folder used when a command gives none.
	Dir      string
	Progress Progress
}

// Result is what a failover command did.
type Result struct {
	VM        string    `json:"vm"`
	Kind      string    `json:"kind,omitempty"`
	State     string    `json:"state"`
	Point     string    `json:"point,omitempty"`
	PointTime time.Time `json:"point_time,omitzero"`
	Name      string    `json:"name,omitempty"` // the VM's name at the recovery host
	Dir       string    `json:"dir,omitempty"`
	Disks     []string  `json:"disks,omitempty"`
	// Host says what the host driver did; Template is the ARM template
	// written for a target that keeps the disks (Azure).
	Host     string `json:"host,omitempty"`
	Template string `json:"template,omitempty"`
	// LastWrite and Loss: the newest write the target heard of, and how
	// much older the point is (0: nothing the target heard of is lost).
	LastWrite time.Time     `json:"last_write,omitzero"`
	Loss      time.Duration `json:"data_loss_window"`
	Removed   []string      `json:"removed,omitempty"`
	Notes     []string      `json:"notes,omitempty"`
}

// session is one command's hold on an item: its lock, its record and its
// target.
type session struct {
	r    *Runner
	lock *vault.Lock
	site vault.Site
	it   vault.Item
	t    target.Target
	h    host.Host
	hn   string
}

func (r *Runner) open(ctx context.Context, vm string) (*session, error) {
	if err := replica.CheckName("VM", vm); err != nil {
		return nil, err
	}
	v := r.Engine.Vault
	lock, err := v.LockVM(vm)
	if err != nil {
		return nil, err
	}
	s := &session{r: r, lock: lock}
	err = v.View(func(tx *vault.Tx) (err error) {
		if s.site, err = tx.Site(); err != nil {
			return err
		}
		s.it, err = tx.Item(vm)
		return err
	})
	if err == nil {
		s.h, s.hn, err = r.Host(s.it)
	}
	if err == nil {
		s.t, err = r.Engine.OpenTarget(ctx, s.it.Target)
		if err != nil {
			err = fmt.Errorf("open target %s: %w", s.it.Target, errors.Join(replica.ErrTarget, err))
		}
	}
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	return s, nil
}

func (s *session) close() {
	s.t.Close()
	s.lock.Unlock()
}

func (s *session) save() error {
	return s.r.Engine.Vault.Update(func(tx *vault.Tx) error { return tx.PutItem(s.it) })
}

func refuse(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, ErrState)...)
}

// choosePoint finds a point on the target: an ID, "" or latest, or
// latest-app (the newest app-consistent one).
func choosePoint(ctx context.Context, t target.Target, vm, id string) (catalog.Point, []catalog.Point, error) {
	pts, err := catalog.Points(ctx, t, vm)
	if err != nil {
		return catalog.Point{}, nil, err
	}
	if id == "latest-app" {
		for i := len(pts) - 1; i >= 0; i-- {
			if pts[i].AppConsistent {
				return pts[i], pts, nil
			}
		}
		return catalog.Point{}, pts, fmt.Errorf("VM %s has no app-consistent recovery point; choose one with asr points %s: %w", vm, vm, replica.ErrNotFound)
	}
	p, err := FindPoint(ctx, t, vm, id)
	return p, pts, err
}

// lastWrite is the newest write the target heard of: the newest point
// that shipped data, or the primary's report of writes it sealed later.
func lastWrite(ctx context.Context, t target.Target, vm string, pts []catalog.Point) (time.Time, error) {
	var last time.Time
	for _, p := range pts {
		if p.Bytes > 0 && p.Time.After(last) {
			last = p.Time
		}
	}
	st, ok, err := catalog.ReadStatus(ctx, t, vm)
	if err != nil {
		return last, err
	}
	if ok && st.LastWrite.After(last) {
		last = st.LastWrite
	}
	return last, nil
}

// newFailover plans a failover's recovery disks and checks that none of
// them exists yet, before anything is changed. The folder is
// DIR/<name>; the disks are <disk>.vhd in it, or recovery/<name>/<disk>
// on a target that keeps them.
func (s *session) newFailover(ctx context.Context, kind, dir string) (*vault.Failover, error) {
	name := s.it.VM
	if kind == KindTest {
		name += "-test"
	}
	if dir == "" {
		dir = s.r.Dir
	}
	if dir == "" {
		return nil, fmt.Errorf("no recovery folder: pass --dir or set recovery.dir: %w", replica.ErrInvalid)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery folder %s: %w", dir, errors.Join(replica.ErrLocal, err))
	}
	f := &vault.Failover{Kind: kind, Name: name, Dir: filepath.Join(abs, name), Started: time.Now().UTC()}
	for _, d := range s.it.Disks {
		rd := vault.RecoveryDisk{Name: d.Name, Path: filepath.Join(f.Dir, d.Name+".vhd")}
		if !s.t.Local() {
			rd.Path = "recovery/" + name + "/" + d.Name
			if _, err := s.t.DiskSize(ctx, rd.Path); err == nil {
				return nil, fmt.Errorf("recovery disk %s exists on the target; delete it (or clean up the failover that made it) first: %w", rd.Path, replica.ErrExists)
			} else if !errors.Is(err, target.ErrNotFound) {
				return nil, err
			}
		} else if _, err := os.Lstat(rd.Path); err == nil {
			return nil, fmt.Errorf("%s exists; fail over to another --dir, or remove it: %w", rd.Path, replica.ErrExists)
		}
		f.Disks = append(f.Disks, rd)
	}
	if err := checkDir(abs, "--dir"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(f.Dir); errors.Is(err, os.ErrNotExist) {
		f.MadeDir = true
	}
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("recovery folder %s: %w", f.Dir, errors.Join(replica.ErrLocal, err))
	}
	return f, nil
}
