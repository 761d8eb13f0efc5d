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
	"github.com/asr-project/asr/vault"
)

// Test makes the point's disks under <vm>-test and starts that VM
// isolated. Replication goes on: the item's state is not touched, and
// prune keeps the point until the cleanup.
func (r *Runner) Test(ctx context.Context, vm, point, dir string) (Result, error) {
	s, err := r.open(ctx, vm)
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	if vault.FailedOver(s.it.State) {
		return s.result(s.it.Failover), refuse("VM %s is %s; a test failover is for a VM that is still replicating", vm, s.it.State)
	}
	if f := s.it.Test; f != nil {
		switch {
		case f.Step == stepDone:
			return s.result(f), refuse("a test failover of VM %s from point %s runs since %s; run asr failover cleanup %s first", vm, f.Point, f.Started.Local().Format(time.DateTime), vm)
		case f.Step == stepCleanup:
			return s.result(f), refuse("the cleanup of VM %s's test failover was interrupted; run asr failover cleanup %s to finish it", vm, vm)
		case point != "" && point != f.Point && point != "latest" && point != "latest-app":
			return s.result(f), refuse("an interrupted test failover of VM %s from point %s is unfinished; run it again without --point, or asr failover cleanup %s", vm, f.Point, vm)
		}
	} else {
		p, _, err := choosePoint(ctx, s.t, vm, point)
		if err != nil {
			return Result{VM: vm, State: s.it.State}, err
		}
		if s.it.Test, err = s.newFailover(ctx, KindTest, dir); err != nil {
			return Result{VM: vm, State: s.it.State}, err
		}
		s.it.Test.Point, s.it.Test.PointTime, s.it.Test.Step = p.ID, p.Time, stepDisks
		if err := s.save(); err != nil {
			return Result{}, err
		}
	}
	err = s.run(ctx, s.it.Test)
	return s.result(s.it.Test), err
}

// Cleanup removes what a test failover made: the test VM (through the
// host driver), its disks, the template and the folder if it made them.
func (r *Runner) Cleanup(ctx context.Context, vm string) (Result, error) {
	s, err := r.open(ctx, vm)
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	f := s.it.Test
	if f == nil {
		return s.result(nil), refuse("VM %s has no test failover to clean up; start one with asr failover %s --test", vm, vm)
	}
	res := s.result(f)
	f.Step = stepCleanup
	if err := s.save(); err != nil {
		return res, err
	}
	if err := s.removeRecovered(ctx, f, &res); err != nil {
		return res, err
	}
	replica.Crashpoint("cleanup-removed")
	s.it.Test = nil
	return res, s.save()
}

// Planned shuts the source VM down, replicates its last writes, makes the
// recovery disks from that final point and starts the VM at the recovery
// site: no data loss. It runs at the primary, which alone can do the
// first two.
func (r *Runner) Planned(ctx context.Context, vm, dir string) (Result, error) {
	s, err := r.open(ctx, vm)
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	// A recovery site runs it only for a VM it replicates itself (after a
	// reverse reprotect): the way such a VM goes home.
	if s.site.Role == vault.RoleRecovery && s.it.Target == s.site.Target {
		return s.result(nil), refuse("this is the recovery site %s: a planned failover runs at the primary, which can shut VM %s down and ship its last writes; run it there, or asr failover %s --unplanned here", s.site.Name, vm, vm)
	}
	switch s.it.State {
	case vault.StateProtected:
		f, err := s.newFailover(ctx, KindPlanned, dir)
		if err != nil {
			return s.result(nil), err
		}
		f.Step, f.Prev = stepShutdown, s.it.State
		s.it.State, s.it.Failover = vault.StateFailoverInProgress, f
		if err := s.save(); err != nil {
			return s.result(nil), err
		}
	case vault.StateFailoverInProgress:
		if s.it.Failover.Kind != KindPlanned {
			return s.result(s.it.Failover), refuse("an %s failover of VM %s is in progress; run asr failover %s --%s to finish it", s.it.Failover.Kind, vm, vm, s.it.Failover.Kind)
		}
	default:
		return s.result(s.it.Failover), s.refuseState("a planned failover")
	}
	f := s.it.Failover
	if f.Step == stepShutdown {
		if err := s.shutdownSource(ctx); err != nil {
			// Nothing has changed yet: the VM goes back to replicating.
			s.it.State, s.it.Failover = f.Prev, nil
			return s.result(nil), errors.Join(err, s.save())
		}
		replica.Crashpoint("failover-shutdown")
		f.Step = stepFinal
		if err := s.save(); err != nil {
			return s.result(f), err
		}
	}
	if f.Step == stepFinal {
		it, err := s.r.Engine.FinalCycle(ctx, vm)
		if err != nil {
			return s.result(f), fmt.Errorf("replicate the last writes of VM %s: %w; the source is shut down: fix this and run asr failover %s --planned again, or fail over --unplanned to the latest point", vm, err, vm)
		}
		replica.Crashpoint("failover-final")
		s.it = it
		f = s.it.Failover
		f.Point, f.PointTime, f.LastWrite, f.Step = it.LastPoint, it.LastPointAt, it.LastPointAt, stepDisks
		if err := s.save(); err != nil {
			return s.result(f), err
		}
	}
	return s.finish(ctx, f)
}

// shutdownSource stops the protected VM through the host driver. With no
// driver, it goes on only when no asr track serves the VM's disks, since
// then nothing can be writing through asr.
func (s *session) shutdownSource(ctx context.Context) error {
	err := s.h.Shutdown(ctx, s.sourceVM())
	switch {
	case errors.Is(err, host.ErrUnsupported):
		if s.r.Engine.Tracked(s.it.VM) {
			return refuse("no host driver is configured to shut VM %s down and asr track still serves its disks: shut the VM down and stop asr track (or set host.driver), then run the same command again", s.it.VM)
		}
		s.it.Failover.Host = "no host driver: the source was taken to be off (no asr track ran)"
		return nil
	case err != nil:
		return fmt.Errorf("shut VM %s down at the primary: %v; nothing changed, it is replicating as before: %w", s.it.VM, err, ErrState)
	}
	return nil
}

// Unplanned fails over to a point with only this site's state file and the
// target: the primary may be gone. It says how much the point loses.
func (r *Runner) Unplanned(ctx context.Context, vm, point, dir string, shutdownSource bool) (Result, error) {
	s, err := r.open(ctx, vm)
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	var notes []string
	resume := s.it.State == vault.StateFailoverInProgress && s.it.Failover.Kind == KindUnplanned
	switch {
	case resume && point != "" && point != s.it.Failover.Point:
		return s.result(s.it.Failover), refuse("an unplanned failover of VM %s to point %s is in progress; run asr failover %s --unplanned without --point to finish it, then change-point", vm, s.it.Failover.Point, vm)
	case resume:
	case s.it.State == vault.StateFailoverInProgress && s.it.Failover.Step != stepShutdown && s.it.Failover.Step != stepFinal:
		return s.result(s.it.Failover), refuse("a planned failover of VM %s is making its recovery disks; run asr failover %s --planned to finish it", vm, vm)
	case vault.FailedOver(s.it.State) && s.it.State != vault.StateFailoverInProgress:
		return s.result(s.it.Failover), s.refuseState("an unplanned failover")
	default:
		// Protected, resyncing, or a planned failover stopped before its
		// disks: the disaster wins.
		if shutdownSource {
			if err := s.h.Shutdown(ctx, s.sourceVM()); err != nil {
				notes = append(notes, fmt.Sprintf("the source VM was not shut down: %v", err))
			} else {
				notes = append(notes, "the source VM was shut down")
			}
		}
		p, pts, err := choosePoint(ctx, s.t, vm, point)
		if err != nil {
			return s.result(nil), err
		}
		last, err := lastWrite(ctx, s.t, vm, pts)
		if err != nil {
			return s.result(nil), err
		}
		f := s.it.Failover
		if f == nil {
			if f, err = s.newFailover(ctx, KindUnplanned, dir); err != nil {
				return s.result(nil), err
			}
			f.Prev = s.it.State
		}
		f.Kind, f.Point, f.PointTime, f.LastWrite, f.Step = KindUnplanned, p.ID, p.Time, last, stepDisks
		s.it.State, s.it.Failover = vault.StateFailoverInProgress, f
		if err := s.save(); err != nil {
			return s.result(f), err
		}
	}
	res, err := s.finish(ctx, s.it.Failover)
	res.Notes = notes
	return res, err
}

// ChangePoint switches a failed-over VM's recovery disks to another point
// before commit: it stops the VM, rewrites its disks and starts it again.
func (r *Runner) ChangePoint(ctx context.Context, vm, point string) (Result, error) {
	s, err := r.open(ctx, vm)
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	f := s.it.Failover
	switch {
	case s.it.State == vault.StateFailedOver, s.it.State == vault.StateFailoverInProgress && f.Step == stepDisks:
	case s.it.State == vault.StateFailoverInProgress:
		return s.result(f), refuse("the %s failover of VM %s is not finished (next step: %s); run asr failover %s --%s first", f.Kind, vm, f.Step, vm, f.Kind)
	default:
		return s.result(f), s.refuseState("change-point")
	}
	p, pts, err := choosePoint(ctx, s.t, vm, point)
	if err != nil {
		return s.result(f), err
	}
	if err := s.stopRecovered(ctx, f); err != nil {
		return s.result(f), err
	}
	if f.LastWrite, err = lastWrite(ctx, s.t, vm, pts); err != nil {
		return s.result(f), err
	}
	f.Point, f.PointTime, f.Step = p.ID, p.Time, stepDisks
	for i := range f.Disks {
		f.Disks[i].Done = false
	}
	s.it.State = vault.StateFailoverInProgress
	if err := s.save(); err != nil {
		return s.result(f), err
	}
	return s.finish(ctx, f)
}

// stopRecovered stops the VM running on the recovery disks before they are
// rewritten. Without a host driver, a disk that qemu holds is refused.
func (s *session) stopRecovered(ctx context.Context, f *vault.Failover) error {
	err := s.h.Shutdown(ctx, s.hostVM(f))
	if errors.Is(err, host.ErrUnsupported) {
		for _, d := range f.Disks {
			if s.t.Local() && inUse(d.Path) {
				return refuse("%s is in use by a running VM; shut %s down, then run the same command again", d.Path, f.Name)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("shut the recovered VM %s down: %v; nothing changed: %w", f.Name, err, ErrState)
	}
	return nil
}

// Commit makes a failover final: the VM's other recovery points are
// deleted from the target (a failover can no longer change to them; the
// recovery disks never depended on them) and the item is Committed.
func (r *Runner) Commit(ctx context.Context, vm string) (Result, error) {
	s, err := r.open(ctx, vm)
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	f := s.it.Failover
	switch s.it.State {
	case vault.StateCommitted:
		res := s.result(f)
		res.Notes = append(res.Notes, "already committed")
		return res, nil
	case vault.StateFailedOver:
	case vault.StateFailoverInProgress:
		return s.result(f), refuse("the %s failover of VM %s is not finished (next step: %s); run asr failover %s --%s first", f.Kind, vm, f.Step, vm, f.Kind)
	default:
		return s.result(f), s.refuseState("commit")
	}
	pts, err := catalog.Points(ctx, s.t, vm)
	if err != nil {
		return s.result(f), err
	}
	res := s.result(f)
	// Target first, state file last, as prune does: a kill leaves points
	// the rerun deletes again.
	for _, p := range pts {
		if p.ID == f.Point {
			continue
		}
		if err := catalog.DeletePoint(ctx, s.t, vm, p.ID); err != nil {
			return res, err
		}
		for _, d := range s.it.Disks {
			if err := s.t.DeleteSnapshot(ctx, d.Replica, p.ID); err != nil {
				return res, fmt.Errorf("delete point %s of %s: %w", p.ID, d.Replica, err)
			}
		}
		if err := s.r.Engine.Vault.Update(func(tx *vault.Tx) error { return tx.DeletePoint(vm, p.ID) }); err != nil {
			return res, err
		}
		res.Removed = append(res.Removed, "point "+p.ID)
		replica.Crashpoint("commit-point")
	}
	err = s.publish(ctx, vault.StateCommitted)
	res.State = s.it.State
	return res, err
}

// refuseState says why a command can't run in the item's state and what
// to run instead.
func (s *session) refuseState(what string) error {
	vm, f := s.it.VM, s.it.Failover
	switch s.it.State {
	case vault.StateFailedOver:
		return refuse("VM %s is FailedOver to point %s (awaiting commit): %s is not possible; run asr failover change-point %s --point ID or asr failover commit %s", vm, f.Point, what, vm, vm)
	case vault.StateCommitted:
		return refuse("VM %s is Committed at the recovery site (point %s): %s is not possible; failback brings it back", vm, f.Point, what)
	case vault.StateInitialReplication:
		return refuse("VM %s is still in its initial copy: %s needs a recovery point; run asr replicate %s", vm, what, vm)
	case vault.StateResyncRequired, vault.StateResyncing:
		return refuse("VM %s is %s (%s): %s would lose writes; run asr resync %s first, or asr failover %s --unplanned to a point it has", vm, s.it.State, s.it.HealthReason, what, vm, vm)
	}
	return refuse("VM %s is %s: %s is not possible; it needs a failed-over VM (asr failover %s --planned or --unplanned)", vm, s.it.State, what, vm)
}

// removeRecovered removes what a failover made at the recovery site: the
// VM (through the host driver), its disks, and by name the files asr and
// its driver wrote in its folder, and the folder if the failover made it
// and nothing else is left in it. Safe to rerun.
func (s *session) removeRecovered(ctx context.Context, f *vault.Failover, res *Result) error {
	vm := s.it.VM
	what := "asr failover cleanup " + vm
	if f.Kind != KindTest {
		what = "asr failback commit " + vm
	}
	switch err := s.h.Remove(ctx, s.hostVM(f)); {
	case errors.Is(err, host.ErrUnsupported):
		res.Notes = append(res.Notes, fmt.Sprintf("no host driver configured: remove the VM %s yourself", f.Name))
	case err != nil:
		return fmt.Errorf("remove the VM %s: %v; run %s again once the host answers: %w", f.Name, err, what, ErrState)
	default:
		res.Removed = append(res.Removed, "VM "+f.Name)
	}
	for _, d := range f.Disks {
		if s.t.Local() {
			for _, p := range []string{d.Path, d.Path + ".partial"} {
				if err := os.Remove(p); err == nil {
					res.Removed = append(res.Removed, p)
				} else if !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("remove %s: %w", p, err)
				}
			}
			continue
		}
		if err := s.t.DeleteDisk(ctx, d.Path); err != nil {
			return fmt.Errorf("remove the recovery disk %s: %w", d.Path, err)
		}
		res.Removed = append(res.Removed, d.Path)
	}
	// What asr and its host driver write in the folder, by name; a file
	// the operator put there is left, and so is the folder then.
	for _, p := range []string{templatePath(f), filepath.Join(f.Dir, f.Name+".xml"), filepath.Join(f.Dir, f.Name+".console.log")} {
		if err := os.Remove(p); err == nil {
			res.Removed = append(res.Removed, p)
		}
	}
	if f.MadeDir {
		if err := os.Remove(f.Dir); err == nil {
			res.Removed = append(res.Removed, f.Dir)
		} else if !errors.Is(err, os.ErrNotExist) {
			res.Notes = append(res.Notes, fmt.Sprintf("%s kept: it holds files asr did not make", f.Dir))
		}
	}
	return nil
}
