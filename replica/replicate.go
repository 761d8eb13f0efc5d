package replica

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/image"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// Result is what one replicate run did for one VM.
type Result struct {
	VM    string `json:"vm"`
	Point string `json:"point,omitempty"`
	Bytes int64  `json:"bytes"`
	// Compared and ReadBack are a resync's bytes compared and bytes read
	// back from the replica (or its checksum map).
	Compared int64         `json:"compared,omitempty"`
	ReadBack int64         `json:"read_back,omitempty"`
	Duration time.Duration `json:"duration"`
	Skipped  string        `json:"skipped,omitempty"` // why nothing was done
	Busy     bool          `json:"busy,omitempty"`    // skipped: another asr job holds the VM
	Error    string        `json:"error,omitempty"`
	err      error
}

// Err is the run's error for this VM, if any.
func (r Result) Err() error { return r.err }

// Replicate runs a cycle for each named VM, or for every item that is due
// when none is named. It returns one result per VM considered; the error is
// the first failure, so cron sees a non-zero exit.
func (e *Engine) Replicate(ctx context.Context, vms []string) ([]Result, error) {
	for _, vm := range vms {
		if err := CheckName("VM", vm); err != nil {
			return nil, err
		}
	}
	var items []vault.Item
	var pols []vault.Policy
	err := e.Vault.View(func(tx *vault.Tx) (err error) {
		site, err := tx.Site()
		if err != nil {
			return err
		}
		if items, err = tx.ItemsNamed(vms); err != nil {
			return err
		}
		if items, err = replicatedHere(site, items, len(vms) > 0); err != nil {
			return err
		}
		pols, err = tx.Policies()
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []Result
	var first error
	for _, it := range items {
		if why := e.notDue(it, pols, len(vms) > 0); why != "" {
			out = append(out, Result{VM: it.VM, Skipped: why})
			continue
		}
		var r Result
		if it.State == vault.StateResyncRequired || it.State == vault.StateResyncing {
			r = e.resyncOne(ctx, it.VM, false, false)
		} else {
			r = e.replicateOne(ctx, it.VM, len(vms) > 0)
		}
		if r.err != nil && first == nil {
			first = r.err
		}
		out = append(out, r)
	}
	// Cron makes a job a minute per VM; a week of them is history enough.
	e.Vault.Update(func(tx *vault.Tx) error {
		_, err := tx.PruneJobs(e.now().Add(-JobRetention))
		return err
	})
	return out, first
}

// JobRetention is how long finished jobs are kept: every replicate run
// prunes the older ones.
const JobRetention = 7 * 24 * time.Hour

// notDue says why an item is skipped now, or "" when it is due. A point
// is due once nine tenths of the copy frequency have passed: a point's time
// is its rotation's, a moment after its run started, so a timer that fires
// every frequency would otherwise find every other run a moment early and
// make points at twice the frequency. Named
// items are always due, except those waiting for an operator or a resync;
// from cron a resync is due inside its policy's window.
func (e *Engine) notDue(it vault.Item, pols []vault.Policy, named bool) string {
	now := e.now()
	var pol vault.Policy
	for _, p := range pols {
		if p.Name == it.Policy {
			pol = p
		}
	}
	resync := it.State == vault.StateResyncRequired || it.State == vault.StateResyncing
	switch {
	case vault.FailedOver(it.State):
		return fmt.Sprintf("failed over (%s): replication of it has stopped; see asr failover --help", it.State)
	case it.Health == vault.HealthCritical:
		return fmt.Sprintf("needs an operator: %s; fix the cause, then run `asr resume %s`", it.LastError, it.VM)
	case resync && named:
		what := "resync required"
		if it.Resync != nil {
			what = "resync in progress"
		}
		return fmt.Sprintf("%s (%s); it runs in the window %s, or now with `asr resync %s`", what, it.HealthReason, pol.ResyncWindow, it.VM)
	case resync:
		if at := resyncAt(pol, now); at.After(now) {
			return "resync required, runs at " + at.Local().Format("15:04")
		}
	case named || it.Pending != nil || it.State == vault.StateInitialReplication:
		return ""
	}
	if it.Failures > 0 {
		if at := it.FirstFailure.Add(RetryAfter(it.Failures)); now.Before(at) {
			return "retrying at " + at.Local().Format("15:04:05")
		}
		return ""
	}
	if due := it.LastPointAt.Add(pol.Frequency - pol.Frequency/10); !resync && now.Before(due) {
		return "next due at " + due.Local().Format("15:04:05")
	}
	return ""
}

// resyncAt is when a pending resync may run: now inside the policy's
// window, else the window's next start.
func resyncAt(pol vault.Policy, now time.Time) time.Time {
	w, err := parseWindow(pol.ResyncWindow)
	if err != nil {
		w, _ = parseWindow(NewPolicy("").ResyncWindow)
	}
	return w.next(now)
}

// RetryAfter is how long after the first failure the next try comes, after
// n consecutive failures: 1, 2, 4, 8, 10 minutes apart, then every 30.
func RetryAfter(n int) time.Duration {
	steps := []time.Duration{1, 3, 7, 15, 25} // cumulative minutes
	if n <= len(steps) {
		return steps[max(n, 1)-1] * time.Minute
	}
	return (25 + 30*time.Duration(n-len(steps))) * time.Minute
}

// replicateOne runs one VM's cycle. A VM named on the command line waits
// for the lock like any command; from cron (none named) a VM busy with
// another job (an initial copy, a resync) is skipped at once, so one long
// job neither fails cron nor makes it wait out the lock timeout per VM.
func (e *Engine) replicateOne(ctx context.Context, vm string, named bool) Result {
	start := time.Now()
	r := Result{VM: vm}
	lock, err := e.lockJob(vm, named, &r)
	if lock == nil {
		return r
	}
	defer lock.Unlock()
	it, err := e.lockedCycle(ctx, vm, &r.Bytes)
	r.Duration = time.Since(start)
	if err != nil {
		r.err = err
		r.Error = err.Error()
		return r
	}
	r.Point = it.LastPoint
	return r
}

// lockedCycle runs one cycle of a VM whose lock the caller holds, as a
// job, records a failure on the item, and returns the item as the cycle
// left it; bytes, when not nil, gets the bytes shipped.
func (e *Engine) lockedCycle(ctx context.Context, vm string, bytes *int64) (vault.Item, error) {
	site, it, err := e.siteItem(vm)
	if err != nil {
		return it, err
	}
	j, err := e.startJob("replicate", vm)
	if err != nil {
		return it, err
	}
	err = j.finish(e.runCycle(ctx, site.Name, &it, j))
	if bytes != nil {
		*bytes = j.j.Bytes
	}
	if err != nil {
		e.recordFailure(vm, err)
	}
	return it, err
}

// siteItem reads the site and one of its items.
func (e *Engine) siteItem(vm string) (site vault.Site, it vault.Item, err error) {
	err = e.Vault.View(func(tx *vault.Tx) (err error) {
		if site, err = tx.Site(); err != nil {
			return err
		}
		it, err = tx.Item(vm)
		return err
	})
	return site, it, err
}

// siteName is the name of this site, which every point it makes records.
func (e *Engine) siteName() (string, error) {
	var site vault.Site
	err := e.Vault.View(func(tx *vault.Tx) (err error) { site, err = tx.Site(); return })
	return site.Name, err
}

// lockJob takes a VM's lock for a job: waiting when the VM was named, or
// (cron) not at all, marking r skipped as busy. With no lock returned, r
// says why.
func (e *Engine) lockJob(vm string, named bool, r *Result) (*vault.Lock, error) {
	lockVM := e.Vault.LockVM
	if !named {
		lockVM = e.Vault.TryLockVM
	}
	lock, err := lockVM(vm)
	switch {
	case !named && errors.Is(err, vault.ErrLocked):
		r.Skipped, r.Busy = "busy with another asr job: "+err.Error(), true
	case err != nil:
		r.err, r.Error = err, err.Error()
	}
	return lock, err
}

// jobTarget opens an item's target for a job, once its source disks are
// known to be there, under the policy's bandwidth limits.
func (e *Engine) jobTarget(ctx context.Context, it *vault.Item) (target.Target, error) {
	if err := checkSources(*it); err != nil {
		return nil, err
	}
	t, err := e.openTarget(ctx, it.Target)
	if err != nil {
		return nil, err
	}
	lt, err := e.limit(t, it.Policy)
	if err != nil {
		t.Close()
		return nil, err
	}
	return lt, nil
}

func (e *Engine) runCycle(ctx context.Context, site string, it *vault.Item, j *job) error {
	t, err := e.jobTarget(ctx, it)
	if err != nil {
		return err
	}
	defer t.Close()
	if it.State == vault.StateInitialReplication {
		return e.initial(ctx, t, site, it, j, nil)
	}
	if err := movedAway(ctx, t, site, it.VM); err != nil {
		return err
	}
	if it.Pending == nil {
		if err := e.checkSizes(it); err != nil {
			return err
		}
	}
	return e.cycles(ctx, t, it, j)
}

// replicatedHere keeps the items this site replicates: all of a
// primary's; at a recovery site only those it protects itself after a
// reverse reprotect (their target is not the one it imports from). A VM
// named on the command line that is not among them is refused, and so is
// a run at a recovery site that replicates nothing.
func replicatedHere(site vault.Site, items []vault.Item, named bool) ([]vault.Item, error) {
	if site.Role != vault.RoleRecovery {
		return items, nil
	}
	var out []vault.Item
	for _, it := range items {
		if it.Target != site.Target {
			out = append(out, it)
		} else if named {
			return nil, primaryOnly(site, "replicate")
		}
	}
	if len(out) == 0 {
		return nil, primaryOnly(site, "replicate")
	}
	return out, nil
}

// primaryOnly refuses a command that reads the source disks at a recovery
// site, whose items are the primary's, imported from the target.
func primaryOnly(site vault.Site, cmd string) error {
	if site.Role != vault.RoleRecovery {
		return nil
	}
	return fmt.Errorf("this is the recovery site %s: %s runs at the primary; here asr sync refreshes the VMs and points from %s: %w", site.Name, cmd, site.Target, ErrInvalid)
}

// FinalCycle makes one more recovery point of a VM now, outside the
// schedule, for a planned failover: the source VM is shut down, so the
// point holds its last write. The caller holds the VM's lock (so no other
// run starts a cycle) and has put the item in FailoverInProgress, which
// keeps cron away afterwards. It returns the item as the cycle left it.
func (e *Engine) FinalCycle(ctx context.Context, vm string) (vault.Item, error) {
	return e.lockedCycle(ctx, vm, nil)
}

// movedAway refuses to replicate a VM that another site failed over: its
// writes would go to replicas the recovery site has chosen a point of.
func movedAway(ctx context.Context, t target.Target, site, vm string) error {
	f, ok, err := catalog.ReadFailover(ctx, t, vm)
	if err != nil || !ok || f.Site == site {
		return err
	}
	return fmt.Errorf("VM %s was failed over by site %s (%s, to point %s, %s): this site no longer replicates it; failback brings it back: %w",
		vm, f.Site, f.Kind, f.Point, f.State, ErrMoved)
}

// checkSizes sends a VM whose source disk grew to a resync (which grows
// the replica) and refuses one whose disk shrank.
func (e *Engine) checkSizes(it *vault.Item) error {
	for _, d := range it.Disks {
		size, err := image.SizeOf(d.Path, DiskFormat(d))
		if err != nil {
			return fmt.Errorf("disk %s: %w", d.Path, err)
		}
		switch {
		case size > d.Size:
			return e.markResync(it, fmt.Errorf("disk %s grew from %d to %d bytes", d.Name, d.Size, size))
		case size < d.Size:
			return fmt.Errorf("disk %s shrank from %d to %d bytes; a replica never shrinks: restore the size (qemu-img resize), or disable and enable protection again: %w", d.Path, d.Size, size, ErrBadData)
		}
	}
	return nil
}

// recordFailure updates the item's health: recoverable errors count toward
// the back-off, non-recoverable ones need an operator.
func (e *Engine) recordFailure(vm string, err error) {
	if errors.Is(err, ErrResync) || errors.Is(err, vault.ErrLocked) || errors.Is(err, context.Canceled) {
		return // already recorded, or not the item's fault
	}
	now := e.now()
	e.Vault.Update(func(tx *vault.Tx) error {
		it, terr := tx.Item(vm)
		if terr != nil {
			return terr
		}
		if it.Failures == 0 {
			it.FirstFailure = now
		}
		it.Failures++
		it.LastError = err.Error()
		it.Health, it.HealthReason = vault.HealthWarning, "retrying: "+err.Error()
		if !Recoverable(err) {
			it.Health, it.HealthReason = vault.HealthCritical, err.Error()+"; fix that, then run `asr resume "+vm+"`"
		}
		return tx.PutItem(it)
	})
}

// Recoverable says whether an error may go away by itself (network,
// throttling, space) or needs an operator (credentials, broken disk chain,
// missing VM disk, invalid replica).
func Recoverable(err error) bool {
	switch {
	case errors.Is(err, target.ErrAuth), errors.Is(err, target.ErrInvalid),
		errors.Is(err, vhd.ErrBrokenChain), errors.Is(err, ErrNotFound), errors.Is(err, target.ErrNotFound),
		errors.Is(err, ErrBadData), errors.Is(err, hrl.ErrCorrupt), errors.Is(err, ErrMoved):
		return false
	}
	return true
}
