package replica

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/vault"
)

// ReverseReason begins the health reason of an item a reverse reprotect
// is seeding, which a rerun of it recognises.
const ReverseReason = "reverse reprotect"

// Reverse asks for a failed-over VM to be protected in the other
// direction: its recovered disks, at this site, to a target at the
// primary, each replica seeded from the original disk there.
type Reverse struct {
	VM        string
	Target    string
	Policy    string   // "": the item's
	Recovered []string // the recovered disks, in the item's disk order
}

// ReverseProtect turns a committed failover into a protected item in the
// other direction. Each replica is first copied from the original disk
// at the primary (Disk.Seed), which costs no transfer from this site when
// the target sits beside it; a full resync then sends only the blocks in
// which the recovered disk differs, and replication goes on from here.
// The item keeps its name, its points (they say which site made them)
// and its machine settings. Run again after a kill, it resumes: the copy
// where it stopped, then the resync from its checkpoint.
func (e *Engine) ReverseProtect(ctx context.Context, req Reverse) (Result, error) {
	if u, err := url.Parse(req.Target); err != nil || u.User != nil || u.RawQuery != "" {
		return Result{VM: req.VM}, fmt.Errorf("target URL %q: give credentials through the environment or config, never in the URL (it is stored in the state file): %w", redact(req.Target), ErrInvalid)
	}
	lock, err := e.Vault.LockVM(req.VM)
	if err != nil {
		return Result{VM: req.VM}, err
	}
	defer lock.Unlock()
	site, old, err := e.siteItem(req.VM)
	if err != nil {
		return Result{VM: req.VM}, err
	}
	if req.Policy == "" {
		req.Policy = old.Policy
	}
	it, need, err := e.prepare(Protect{VM: req.VM, Disks: req.Recovered, Target: req.Target, Policy: req.Policy})
	if err != nil {
		return Result{VM: req.VM}, err
	}
	if len(it.Disks) != len(old.Disks) {
		return Result{VM: req.VM}, fmt.Errorf("VM %s has %d disks, %d recovered disks were given: %w", req.VM, len(old.Disks), len(it.Disks), ErrInvalid)
	}
	for i := range it.Disks {
		d, o := &it.Disks[i], old.Disks[i]
		d.Name, d.Replica = o.Name, replicaName(req.VM, o.Name)
		d.Seed, d.SeedFormat = o.Path, o.Format
	}
	it.Machine = old.Machine
	it.HealthReason = ReverseReason + ": seeding the replicas from the original disks"
	t, err := e.openTarget(ctx, req.Target)
	if err != nil {
		return Result{VM: req.VM}, err
	}
	defer t.Close()
	if err := checkTarget(ctx, t, &it, need); err != nil {
		return Result{VM: req.VM}, err
	}
	if t, err = e.limit(t, it.Policy); err != nil {
		return Result{VM: req.VM}, err
	}
	if err := e.saveItem(&it); err != nil {
		return Result{VM: req.VM}, err
	}
	for _, d := range it.Disks {
		if err := tracker.Stamp(d.Path); err != nil {
			return Result{VM: req.VM}, fmt.Errorf("disk %s: %w", d.Path, err)
		}
	}
	crashpoint("reverse-recorded")
	return e.reverse(ctx, t, site.Name, &it)
}

// ResumeReverse goes on with a reverse reprotect a kill interrupted: the
// seed copy, or the resync after it.
func (e *Engine) ResumeReverse(ctx context.Context, vm string) (Result, error) {
	lock, err := e.Vault.LockVM(vm)
	if err != nil {
		return Result{VM: vm}, err
	}
	defer lock.Unlock()
	site, it, err := e.siteItem(vm)
	if err != nil {
		return Result{VM: vm}, err
	}
	t, err := e.jobTarget(ctx, &it)
	if err != nil {
		return Result{VM: vm}, err
	}
	defer t.Close()
	return e.reverse(ctx, t, site.Name, &it)
}

// reverse runs a reverse reprotect's job from where the item stands: the
// seed copy (InitialReplication), then the resync.
func (e *Engine) reverse(ctx context.Context, t target.Target, site string, it *vault.Item) (Result, error) {
	start := time.Now()
	r := Result{VM: it.VM}
	j, err := e.startJob("reprotect", it.VM)
	if err != nil {
		return r, err
	}
	var rs vault.Resync
	if it.State == vault.StateInitialReplication {
		err = e.initial(ctx, t, site, it, j, &rs)
	} else {
		err = e.runResync(ctx, site, it, j, true, &rs)
	}
	for _, d := range rs.Disks {
		r.Bytes, r.Compared, r.ReadBack = r.Bytes+d.Sent, r.Compared+d.Compared, r.ReadBack+d.Read
	}
	r.Point, r.Duration = it.LastPoint, time.Since(start)
	if err = j.finish(err); err != nil {
		e.recordFailure(it.VM, err)
		r.err, r.Error = err, err.Error()
	}
	return r, err
}

// seeded brings replicas copied from seeds to their sources by a full
// resync, which sends only the blocks that differ, and makes the first
// point from here.
func (e *Engine) seeded(ctx context.Context, site string, it *vault.Item, j *job, rs *vault.Resync) error {
	for i := range it.Disks {
		it.Disks[i].Seed, it.Disks[i].SeedFormat = "", ""
	}
	it.State, it.Health = vault.StateResyncRequired, vault.HealthWarning
	it.HealthReason = ReverseReason + ": replicas seeded from the original disks; every block is compared"
	if err := e.saveItem(it); err != nil {
		return err
	}
	crashpoint("reverse-seeded")
	e.event(it.VM, "replicas seeded from the original disks (%d bytes copied there)", j.j.Bytes)
	return e.runResync(ctx, site, it, j, true, rs)
}
