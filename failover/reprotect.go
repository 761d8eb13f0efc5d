package failover

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// reprotectReason marks a resync that a reprotect started, so a rerun of
// asr reprotect after a kill goes on with it.
const reprotectReason = "reprotected after failback: every block is compared with the replica"

// Reprotect starts replication in whichever direction the VM now runs.
//
// After a committed failover (the item is Committed here) it protects the
// recovered VM back to url, a target at the primary site: the recovered
// disks become the protected disks of this site, each replica is seeded
// from the original disk at the primary and a full resync sends only the
// blocks that differ (Engine.ReverseProtect).
//
// After a committed failback it runs at the primary, whether the failback
// ran here (the item is FailbackCommitted) or at the recovery site (the
// target's failover record says FailbackCommitted). The replica still
// holds the failover's point, so a full resync, not a new copy, seeds it:
// only the blocks that changed travel. The points stay exportable.
//
// Killed anywhere, the same call goes on.
func (r *Runner) Reprotect(ctx context.Context, vm, url string) ([]replica.Result, error) {
	rev, err := r.reverseRequest(ctx, vm, url)
	if err != nil {
		return nil, err
	}
	var res replica.Result
	switch {
	case rev.VM != "":
		res, err = r.Engine.ReverseProtect(ctx, rev)
		return []replica.Result{res}, err
	case rev.Target != "":
		res, err = r.Engine.ResumeReverse(ctx, vm)
		return []replica.Result{res}, err
	}
	if err := r.toResync(ctx, vm); err != nil {
		return nil, err
	}
	return r.Engine.Resync(ctx, []string{vm}, true)
}

// reverseRequest says which reprotect the item's state asks for: a new
// reverse one (VM set), one to resume (only Target set), or the forward
// one after a failback (zero).
func (r *Runner) reverseRequest(ctx context.Context, vm, url string) (replica.Reverse, error) {
	s, err := r.open(ctx, vm)
	if err != nil {
		return replica.Reverse{}, err
	}
	defer s.close()
	it := s.it
	switch {
	case it.State == vault.StateCommitted:
	case strings.Contains(it.HealthReason, replica.ReverseReason) && (it.State == vault.StateInitialReplication || it.State == vault.StateResyncRequired || it.State == vault.StateResyncing):
		if url != "" && url != it.Target {
			return replica.Reverse{}, refuse("VM %s is being reprotected to %s; run asr reprotect %s without --target to finish it", vm, it.Target, vm)
		}
		return replica.Reverse{Target: it.Target}, nil
	case url != "":
		return replica.Reverse{}, refuse("VM %s is %s: --target is for the reverse reprotect of a committed failover; after a failback run asr reprotect %s at the primary without it", vm, it.State, vm)
	default:
		return replica.Reverse{}, nil
	}
	f := it.Failover
	if url == "" {
		return replica.Reverse{}, refuse("VM %s runs at the recovery site (failover committed at point %s): asr reprotect %s --target URL protects it back to a target at the primary site", vm, f.Point, vm)
	}
	if !s.t.Local() {
		return replica.Reverse{}, refuse("VM %s's recovered disks are page blobs on %s, not files this site can track; fail it back with asr failback %s instead", vm, it.Target, vm)
	}
	rev := replica.Reverse{VM: vm, Target: url}
	for _, d := range it.Disks {
		k := slices.IndexFunc(f.Disks, func(r vault.RecoveryDisk) bool { return r.Name == d.Name })
		rev.Recovered = append(rev.Recovered, f.Disks[k].Path)
	}
	return rev, nil
}

// toResync moves the item to ResyncRequired, then clears the target's
// failover record: a kill between the two leaves a ResyncRequired item
// whose rerun clears it.
func (r *Runner) toResync(ctx context.Context, vm string) error {
	s, err := r.open(ctx, vm)
	if err != nil {
		return err
	}
	defer s.close()
	rec, ok, err := catalog.ReadFailover(ctx, s.t, vm)
	if err != nil {
		return err
	}
	home := ok && rec.State == vault.StateFailbackCommitted
	switch {
	case vault.FailedOver(s.it.State) && s.it.State != vault.StateFailbackCommitted:
		return s.refuseReprotect()
	case s.site.Role == vault.RoleRecovery:
		return refuse("this is the recovery site %s: reprotect after a failback runs at the primary, which replicates VM %s from its own disks", s.site.Name, vm)
	case s.it.State == vault.StateFailbackCommitted:
	case s.it.State == vault.StateResyncing || s.it.State == vault.StateResyncRequired:
		// A resync under way says "resyncing: " before its reason.
		if !strings.Contains(s.it.HealthReason, reprotectReason) && !home {
			return refuse("VM %s is %s (%s): nothing to reprotect; run asr resync %s", vm, s.it.State, s.it.HealthReason, vm)
		}
	case home:
		// The failback ran at the recovery site: this primary's item
		// still says what it was before the failover.
	case ok:
		return refuse("VM %s was failed over by site %s (%s); fail it back first (asr failback %s there, then asr failback commit %s)", vm, rec.Site, rec.State, vm, vm)
	default:
		return refuse("VM %s is %s and replicates already: nothing to reprotect", vm, s.it.State)
	}
	if s.it.State != vault.StateResyncing {
		for i := range s.it.Disks {
			if p, moved := rec.Disks[s.it.Disks[i].Name]; home && moved {
				s.it.Disks[i].Path, s.it.Disks[i].Format = p, string(vhd.TypeFixed)
			}
		}
		s.it.State, s.it.Health, s.it.HealthReason = vault.StateResyncRequired, vault.HealthWarning, reprotectReason
		s.it.Failover, s.it.Failback, s.it.Pending = nil, nil, nil
		s.it.Failures, s.it.LastError = 0, ""
		if err := s.save(); err != nil {
			return err
		}
	}
	replica.Crashpoint("reprotect-marked")
	if ok {
		if err := catalog.DeleteFailover(ctx, s.t, vm); err != nil {
			return fmt.Errorf("clear the failover record of VM %s on the target: %w; run asr reprotect %s again", vm, err, vm)
		}
	}
	return nil
}

func (s *session) refuseReprotect() error {
	vm := s.it.VM
	switch s.it.State {
	case vault.StateFailedBack:
		return refuse("VM %s has failed back and awaits commit; run asr failback commit %s first", vm, vm)
	case vault.StateFailbackInProgress:
		return refuse("the failback of VM %s is not finished; run %s first", vm, again(vm, s.it.Failback))
	case vault.StateFailedOver:
		return refuse("VM %s is FailedOver (awaiting commit): commit it first with asr failover commit %s; then asr reprotect %s --target URL protects it back to a target at the primary site", vm, vm, vm)
	}
	return refuse("VM %s is %s at this site: reprotect follows a committed failback; run asr failback %s, then asr failback commit %s", vm, s.it.State, vm, vm)
}
