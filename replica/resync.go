package replica

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/image"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/vault"
)

// Resync brings each named VM's replica back to its source by comparing
// fixed-block checksums, now, whatever the policy's window: a VM marked
// ResyncRequired, one whose resync was interrupted (it goes on from its
// checkpoint), or a Protected VM an operator wants checked in full. When
// the compare is done the writes made meanwhile are shipped and the first
// new recovery point is recorded.
// With full, a resync that starts compares every block even where the
// tracker's record would narrow it.
func (e *Engine) Resync(ctx context.Context, vms []string, full bool) ([]Result, error) {
	var out []Result
	var first error
	for _, vm := range vms {
		r := e.resyncOne(ctx, vm, true, full)
		if r.err != nil && first == nil {
			first = r.err
		}
		out = append(out, r)
	}
	return out, first
}

// resyncOne resyncs one VM; from cron (not named) a VM busy with another
// job is skipped, as by replicateOne.
func (e *Engine) resyncOne(ctx context.Context, vm string, named, full bool) Result {
	start := time.Now()
	r := Result{VM: vm}
	fail := func(err error) Result {
		r.err, r.Error, r.Duration = err, err.Error(), time.Since(start)
		return r
	}
	if err := CheckName("VM", vm); err != nil {
		return fail(err)
	}
	lock, _ := e.lockJob(vm, named, &r)
	if lock == nil {
		r.Duration = time.Since(start)
		return r
	}
	defer lock.Unlock()
	site, it, err := e.siteItem(vm)
	if err == nil && site.Role == vault.RoleRecovery && it.Target == site.Target {
		err = primaryOnly(site, "resync")
	}
	if err != nil {
		return fail(err)
	}
	if vault.FailedOver(it.State) {
		return fail(fmt.Errorf("VM %s is %s: a resync would write to replicas it failed over from; see asr failover --help: %w", vm, it.State, ErrMoved))
	}
	if it.State == vault.StateInitialReplication {
		return fail(fmt.Errorf("VM %s is still in its initial copy; run `asr replicate %s` to finish it: %w", vm, vm, ErrInvalid))
	}
	j, err := e.startJob("resync", vm)
	if err != nil {
		return fail(err)
	}
	var rs vault.Resync
	err = j.finish(e.runResync(ctx, site.Name, &it, j, full, &rs))
	r.Bytes = j.j.Bytes
	for _, d := range rs.Disks {
		r.Compared, r.ReadBack = r.Compared+d.Compared, r.ReadBack+d.Read
	}
	if err != nil {
		e.recordFailure(vm, err)
		return fail(err)
	}
	r.Point, r.Duration = it.LastPoint, time.Since(start)
	return r
}

// runResync is the resync's state machine: ResyncRequired or Protected
// moves to Resyncing once the base is recorded (start), Resyncing
// compares disk by disk from its checkpoint, and the cycle that follows
// moves it to Protected with a new point.
func (e *Engine) runResync(ctx context.Context, site string, it *vault.Item, j *job, full bool, done *vault.Resync) error {
	t, err := e.jobTarget(ctx, it)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := movedAway(ctx, t, site, it.VM); err != nil {
		return err
	}
	if it.State != vault.StateResyncing {
		if err := j.step("prepare resync"); err != nil {
			return err
		}
		if err := e.startResync(ctx, t, it, full); err != nil {
			return err
		}
	}
	for k := range it.Resync.Disks {
		if it.Resync.Disks[k].Done {
			continue
		}
		if err := j.step("compare " + it.Resync.Disks[k].Name); err != nil {
			return err
		}
		if err := e.compareDisk(ctx, t, it, k, j); err != nil {
			return err
		}
	}
	j.j.Bytes = 0
	for _, rd := range it.Resync.Disks {
		j.j.Bytes += rd.Sent
	}
	*done = *it.Resync
	e.event(it.VM, "resync compared %s", resyncSummary(it.Resync))
	it.State, it.Resync = vault.StateProtected, nil
	it.Health, it.HealthReason = vault.HealthWarning, "resynced; the first new recovery point is being made"
	if err := e.saveItem(it); err != nil {
		return err
	}
	for _, d := range it.Disks {
		if err := tracker.RemoveResyncSet(d.Path); err != nil {
			return err
		}
	}
	crashpoint("resynced")
	return e.cycle(ctx, t, it, j)
}

// startResync records the resync's base: the tracker (or, with none
// running, the offline recovery) seals or restarts each disk's log chain
// and writes the resync set, and the vault then says that the logs after
// the base carry every write made from now on. It also decides per disk
// what is compared and how, and grows a replica whose source grew.
func (e *Engine) startResync(ctx context.Context, t target.Target, it *vault.Item, all bool) error {
	reason := it.HealthReason
	if it.State == vault.StateProtected {
		reason = "requested by the operator"
		all = all || !degraded(it, &reason)
	}
	rs := &vault.Resync{Reason: reason, Started: e.now()}
	full := map[string]string{}
	for _, d := range it.Disks {
		if all {
			full[d.Name] = "every block compared, as asked"
		}
	}
	zeroFrom := map[string]int64{}
	if err := e.growReplicas(ctx, t, it, full, zeroFrom); err != nil {
		return err
	}
	base, err := e.rebase(ctx, it, full)
	if err != nil {
		return err
	}
	for i := range it.Disks {
		d := &it.Disks[i]
		b, ok := base[d.Name]
		if !ok {
			return fmt.Errorf("disk %s: the tracker did not restart its log: %w", d.Name, ErrResync)
		}
		d.AppliedSeq, d.AppliedID = b.Seq, b.ID
		rd := vault.ResyncDisk{Name: d.Name, Full: full[d.Name] != "", Why: full[d.Name], ZeroFrom: zeroFrom[d.Name]}
		if set, err := tracker.ReadResyncSet(d.Path); err != nil {
			rd.Full, rd.Why = true, "no record of what changed"
		} else if !rd.Full {
			for _, r := range set.Marked() {
				rd.Total += r[1] - r[0]
			}
		}
		if rd.Full {
			rd.Total = d.ReplicaSize
		}
		rd.ReadReplica = t.Local()
		if !t.Local() {
			if _, _, err := e.loadMap(ctx, t, it.VM, *d); err != nil {
				rd.ReadReplica, rd.Why = true, joinWhy(rd.Why, err.Error()+": reading the replica back")
				d.MapDigest, d.MapPoint = "", ""
			}
		}
		rs.Disks = append(rs.Disks, rd)
	}
	it.State, it.Resync, it.Pending = vault.StateResyncing, rs, nil
	it.Health, it.HealthReason = vault.HealthWarning, "resyncing: "+reason
	if err := e.saveItem(it); err != nil {
		return err
	}
	e.event(it.VM, "resync started: %s", reason)
	crashpoint("resync-started")
	return nil
}

// degraded says whether a tracker stopped logging for one of the item's
// disks (a replicate cycle would send it to resync), and why.
func degraded(it *vault.Item, why *string) bool {
	for _, d := range it.Disks {
		if m, err := tracker.ReadDirty(d.Path); err == nil {
			*why = m.Reason
			return true
		}
	}
	return false
}

func joinWhy(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// rebase asks the running tracker to restart logging for the resync or,
// with none running, does it offline under the tracker lock. A disk found
// changed while untracked first gets a full compare.
func (e *Engine) rebase(ctx context.Context, it *vault.Item, full map[string]string) (map[string]tracker.Sealed, error) {
	lock, err := e.lockTracker(it.VM)
	running := errors.Is(err, vault.ErrLocked)
	if err != nil && !running {
		return nil, err
	}
	for _, d := range it.Disks {
		if err := tracker.CheckUntracked(d.Path, running); errors.Is(err, tracker.ErrUntracked) && full[d.Name] == "" {
			full[d.Name] = "the disk changed while untracked"
		}
	}
	if running {
		_, sock := tracker.Paths(e.TrackDir(), it.VM)
		return tracker.RequestResume(ctx, sock)
	}
	defer lock.Unlock()
	out := map[string]tracker.Sealed{}
	for _, s := range TrackSpecs(*it) {
		b, err := tracker.ResumeOffline(s)
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", s.Name, err)
		}
		out[s.Name] = b
	}
	return out, nil
}

// growReplicas grows the replica of every disk whose source grew (a
// resize is not a re-seed: only the new region is new) and refuses a
// source that shrank. The grown region is compared in full.
func (e *Engine) growReplicas(ctx context.Context, t target.Target, it *vault.Item, full map[string]string, zeroFrom map[string]int64) error {
	for i := range it.Disks {
		d := &it.Disks[i]
		size, err := image.SizeOf(d.Path, DiskFormat(*d))
		if err != nil {
			return fmt.Errorf("disk %s: %w", d.Path, err)
		}
		switch {
		case size < d.Size:
			return fmt.Errorf("disk %s shrank from %d to %d bytes; a replica never shrinks: restore the size (qemu-img resize), or disable and enable protection again: %w", d.Path, d.Size, size, ErrBadData)
		case size == d.Size:
			continue
		}
		grown := (size + target.SizeUnit - 1) / target.SizeUnit * target.SizeUnit
		if err := t.ResizeDisk(ctx, d.Replica, grown); err != nil {
			return fmt.Errorf("grow replica %s to %d bytes: %w", d.Replica, grown, err)
		}
		if err := growManifest(ctx, t, it.VM, d.Name, size, grown); err != nil {
			return err
		}
		e.event(it.VM, "disk %s grew from %d to %d bytes; replica grown", d.Name, d.Size, size)
		if d.MapDigest != "" {
			tab, _, err := e.loadMap(ctx, t, it.VM, *d)
			if err == nil && tab.Grow(grown, nil) == nil {
				d.ReplicaSize = grown
				if digest, err := e.storeMap(ctx, t, it.VM, d.Name, tab); err == nil {
					d.MapDigest = digest
				}
			}
		}
		zeroFrom[d.Name] = d.ReplicaSize
		d.Size, d.ReplicaSize = size, grown
		if full[d.Name] == "" {
			// The disk was resized while the VM was off: whatever else
			// changed was not tracked.
			full[d.Name] = fmt.Sprintf("the disk grew to %d bytes", size)
		}
	}
	return nil
}

// growManifest records a disk's new size in the VM's manifest, for a
// failover from the recovery site; each point keeps its own size.
func growManifest(ctx context.Context, t target.Target, vm, disk string, size, replicaSize int64) error {
	m, err := catalog.ReadManifest(ctx, t, vm)
	if err != nil {
		return err
	}
	for i := range m.Disks {
		if m.Disks[i].Name == disk {
			m.Disks[i].Size, m.Disks[i].ReplicaSize = size, replicaSize
		}
	}
	return catalog.PutManifest(ctx, t, m)
}

// resyncSummary is one line of a resync's figures.
func resyncSummary(rs *vault.Resync) string {
	var cmp, sent, read int64
	for _, d := range rs.Disks {
		cmp, sent, read = cmp+d.Compared, sent+d.Sent, read+d.Read
	}
	return fmt.Sprintf("%d bytes, sent %d, read back %d", cmp, sent, read)
}
