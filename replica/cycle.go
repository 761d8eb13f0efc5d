package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/vault"
)

// cycle makes one recovery point: rotate the logs, apply them, snapshot,
// record, prune and delete the applied logs. A Pending point left by a
// crashed run is finished first, from the same record.
func (e *Engine) cycle(ctx context.Context, t target.Target, it *vault.Item, j *job) error {
	if it.Pending == nil {
		if err := j.step("rotate logs"); err != nil {
			return err
		}
		p, err := e.rotate(ctx, it)
		if untrusted(err) {
			return e.markResync(it, err)
		}
		if err != nil {
			return err
		}
		it.Pending = p
		if err := e.saveItem(it); err != nil {
			return err
		}
		crashpoint("rotated")
	}
	p := it.Pending
	if err := e.reportWrites(ctx, t, it); err != nil {
		return err
	}
	if err := e.markMaps(t, it); err != nil {
		return err
	}
	lastIDs := make([]string, len(it.Disks))
	for i, d := range it.Disks {
		if err := j.step("apply logs to " + d.Name); err != nil {
			return err
		}
		n, last, err := e.applyDisk(ctx, t, it, i, j)
		j.j.Bytes += n
		if err != nil {
			return err
		}
		lastIDs[i] = last
	}
	crashpoint("applied")
	if err := j.step("snapshot " + p.Point); err != nil {
		return err
	}
	for _, d := range it.Disks {
		if err := t.Snapshot(ctx, d.Replica, p.Point); err != nil {
			return fmt.Errorf("snapshot %s of %s: %w", p.Point, d.Replica, err)
		}
		crashpoint("snapshot")
	}
	site, err := e.siteName()
	if err != nil {
		return err
	}
	pt := vault.Point{ID: p.Point, VM: it.VM, Time: p.Time, AppConsistent: p.AppConsistent, Disks: diskNames(it), Bytes: j.j.Bytes - j.pointBase,
		Chain: map[string]vault.Link{}, Sizes: map[string]int64{}, Site: site}
	for i, d := range it.Disks {
		pt.Chain[d.Name] = vault.Link{Seq: p.UpTo[d.Name], ID: lastIDs[i]}
		pt.Sizes[d.Name] = d.Size
	}
	if err := catalog.PutPoint(ctx, t, PointRecord(pt)); err != nil {
		return err
	}
	crashpoint("point-written")
	for i := range it.Disks {
		it.Disks[i].AppliedSeq = p.UpTo[it.Disks[i].Name]
		it.Disks[i].AppliedID = lastIDs[i]
	}
	it.Pending = nil
	if !vault.FailedOver(it.State) { // a planned failover's last point keeps its state
		it.State = vault.StateProtected
	}
	it.Health, it.HealthReason = vault.HealthNormal, ""
	if p.AppFailed != "" {
		it.Health, it.HealthReason = vault.HealthWarning, "last app-consistent point failed: "+p.AppFailed
	}
	it.Failures, it.FirstFailure, it.LastError = 0, time.Time{}, ""
	it.LastPoint, it.LastPointAt = pt.ID, pt.Time
	if pt.AppConsistent {
		it.LastAppAt = pt.Time
	}
	err = e.Vault.Update(func(tx *vault.Tx) error {
		if err := tx.PutPoint(pt); err != nil {
			return err
		}
		return tx.PutItem(*it)
	})
	if err != nil {
		return err
	}
	e.event(it.VM, "recovery point %s recorded", pt.ID)
	crashpoint("recorded")
	for _, d := range it.Disks {
		if d.MapDigest != "" {
			e.dropMaps(ctx, t, it.VM, d.Name, d.MapDigest)
		}
	}
	if err := j.step("prune recovery points"); err != nil {
		return err
	}
	if err := e.prune(ctx, t, it); err != nil {
		return err
	}
	crashpoint("pruned")
	for _, d := range it.Disks {
		tracker.RemoveShipped(d.Path, d.AppliedSeq)
	}
	return nil
}

// reportWrites tells the target that the pending point holds writes, so a
// failover to an older point can say how much it loses even if this cycle
// never finishes.
func (e *Engine) reportWrites(ctx context.Context, t target.Target, it *vault.Item) error {
	for _, d := range it.Disks {
		if it.Pending.UpTo[d.Name] > d.AppliedSeq {
			return catalog.PutStatus(ctx, t, catalog.Status{VM: it.VM, LastWrite: it.Pending.Time, Reported: e.now()})
		}
	}
	return nil
}

func (e *Engine) saveItem(it *vault.Item) error {
	return e.Vault.Update(func(tx *vault.Tx) error { return tx.PutItem(*it) })
}

// rotate seals the logs of all disks at one instant and returns the
// pending point they make. With a tracker running it asks the tracker; with
// none, every log on disk is already sealed and the newest of each disk
// ends the point. App-consistent freeze and thaw run around the rotation
// when the policy says one is due.
func (e *Engine) rotate(ctx context.Context, it *vault.Item) (*vault.Pending, error) {
	var pol vault.Policy
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { pol, err = tx.Policy(it.Policy); return }); err != nil {
		return nil, err
	}
	h, hvm, err := e.freezer(it, pol)
	if err != nil {
		return nil, err
	}
	appDue := h != nil && pol.AppConsistentEvery > 0 && e.now().Sub(it.LastAppAt) >= pol.AppConsistentEvery
	frozen, appFailed := false, ""
	if appDue {
		switch err := h.Freeze(ctx, hvm); {
		case errors.Is(err, host.ErrUnsupported):
			appDue = false // nothing can freeze this VM: crash-consistent
		case err != nil:
			appFailed = "freeze " + err.Error()
		default:
			frozen = true
		}
	}
	var sealed map[string]uint64
	err = ctx.Err() // cancelled during the freeze: no point is made
	if err == nil {
		sealed, err = e.sealedLogs(ctx, it)
	}
	if appDue {
		// Thaw even when freeze failed or asr is being stopped: a
		// half-frozen guest must not stay so. Only the timeout bounds it.
		if terr := h.Thaw(context.WithoutCancel(ctx), hvm); terr != nil {
			appFailed = joinWhy(appFailed, "thaw "+terr.Error())
			frozen = false
		}
	}
	if err != nil {
		return nil, err
	}
	if appFailed != "" {
		e.warn(it.VM, "this point is crash-consistent: %s", appFailed)
	}
	now := e.now()
	p := &vault.Pending{Point: pointID(now), Time: now, AppConsistent: frozen, AppFailed: appFailed, UpTo: map[string]uint64{}}
	for _, d := range it.Disks {
		p.UpTo[d.Name] = max(sealed[d.Name], d.AppliedSeq)
	}
	return p, nil
}

// sealedLogs returns the sequence number of each disk's newest sealed log.
// It asks a running tracker to rotate. When none runs it holds the tracker
// lock while it recovers what a crashed tracker left (tracker.Recover) and
// lists the logs, so none can start meanwhile. A disk whose tracker had to
// stop logging (a dirty map beside it) can't be shipped from logs: that
// is ErrUntrusted, and a resync follows. The logs are validated once, when
// they are applied.
func (e *Engine) sealedLogs(ctx context.Context, it *vault.Item) (map[string]uint64, error) {
	lock, err := e.lockTracker(it.VM)
	running := errors.Is(err, vault.ErrLocked)
	if err != nil && !running {
		return nil, err
	}
	defer lock.Unlock() // nil when a tracker holds it
	out := map[string]uint64{}
	if running {
		_, sock := tracker.Paths(e.TrackDir(), it.VM)
		sealed, err := tracker.RequestRotate(ctx, sock)
		if err != nil {
			return nil, err
		}
		for name, s := range sealed {
			out[name] = s.Seq
		}
	} else {
		for _, s := range TrackSpecs(*it) {
			seq, err := tracker.Recover(s)
			if err != nil {
				return nil, err
			}
			out[s.Name] = seq
		}
	}
	for _, d := range it.Disks {
		if m, err := tracker.ReadDirty(d.Path); err == nil {
			return nil, fmt.Errorf("%s: %w", m.Reason, tracker.ErrUntrusted)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := tracker.CheckUntracked(d.Path, running); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lockTracker takes a VM's tracker lock without waiting: ErrLocked means
// an `asr track` holds it.
func (e *Engine) lockTracker(vm string) (*vault.Lock, error) {
	if err := os.MkdirAll(e.TrackDir(), 0o700); err != nil {
		return nil, err
	}
	lockPath, _ := tracker.Paths(e.TrackDir(), vm)
	return vault.LockFile(lockPath, 0)
}

// freezer is what freezes and thaws the VM for an app-consistent point:
// the policy's freeze and thaw commands when it has them, else the site's
// host driver for the VM; nil when neither is set.
func (e *Engine) freezer(it *vault.Item, pol vault.Policy) (host.Host, host.VM, error) {
	vm := host.VM{Name: it.HostName(), Disks: mapDisks(it, func(d vault.Disk) string { return d.Path })}
	if pol.FreezeCommand != "" {
		h, err := host.New(host.Config{Driver: "command", Freeze: pol.FreezeCommand, Thaw: pol.ThawCommand, Timeout: e.HookTimeout})
		return h, vm, err
	}
	if e.Host == nil {
		return nil, vm, nil
	}
	h, err := e.Host(*it)
	return h, vm, err
}

// markResync records that the item's logs can't be trusted. Nothing is
// applied; the resync that follows compares checksums instead.
func (e *Engine) markResync(it *vault.Item, why error) error {
	it.State = vault.StateResyncRequired
	it.Health = vault.HealthWarning
	it.HealthReason = why.Error()
	it.Pending = nil
	if err := e.saveItem(it); err != nil {
		return err
	}
	e.event(it.VM, "resync required: %v", why)
	return fmt.Errorf("VM %s: %w: %v; it runs in the policy's resync window, or now with `asr resync %s`", it.VM, ErrResync, why, it.VM)
}

// pendingLogs opens and validates the logs of a disk that a pending point
// covers, in order, checking their UUID chain from the last applied log.
func pendingLogs(d *vault.Disk, upTo uint64) ([]*hrl.Log, error) {
	files, err := tracker.Logs(d.Path)
	if err != nil {
		return nil, err
	}
	var logs []*hrl.Log
	want := d.AppliedSeq + 1
	for _, f := range files {
		if f.Seq <= d.AppliedSeq || f.Seq > upTo {
			continue
		}
		if f.Seq != want {
			return nil, fmt.Errorf("disk %s: log %d is missing before %s: %w", d.Name, want, f.Path, hrl.ErrChainBroken)
		}
		want++
		l, err := hrl.Open(f.Path)
		if err != nil {
			return nil, err
		}
		logs = append(logs, l)
	}
	if want <= upTo {
		return nil, fmt.Errorf("disk %s: log %d is missing: %w", d.Name, want, hrl.ErrChainBroken)
	}
	first, _ := uuid.Parse(d.AppliedID)
	if err := hrl.CheckChain(logs, first); err != nil {
		return nil, err
	}
	return logs, nil
}

// untrusted says an error means the logs can't be applied and a resync
// is the way on.
func untrusted(err error) bool {
	return errors.Is(err, hrl.ErrCorrupt) || errors.Is(err, hrl.ErrNotClosed) ||
		errors.Is(err, hrl.ErrChainBroken) || errors.Is(err, hrl.ErrTruncated) ||
		errors.Is(err, tracker.ErrUntracked) || errors.Is(err, tracker.ErrUntrusted)
}
