package failover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// stepSync is a failback's first pass, while the recovered VM runs; its
// other steps are those of a planned failover: shutdown (the recovered
// VM), final (the second pass), start (the VM at the primary), done.
const stepSync = "sync"

// FailbackResult is what a failback command did.
type FailbackResult struct {
	VM    string `json:"vm"`
	State string `json:"state"`
	Point string `json:"point,omitempty"` // the failover's point
	// Disks are the primary's disks the VM starts from.
	Disks     []string `json:"disks"`
	Alternate string   `json:"alternate,omitempty"`
	// Compared, Sent: bytes of the last pass compared, and bytes written
	// to the primary's disks over both passes; FinalSent is the final
	// pass's share, written while the VM was down.
	Compared  int64 `json:"compared_bytes"`
	Sent      int64 `json:"sent_bytes"`
	FinalSent int64 `json:"final_sent_bytes"`
	// FinalRead is what the final pass read of the primary's disks: only
	// blocks a killed run may have sent, when the first pass's checksum
	// map is at hand.
	FinalRead int64    `json:"final_read_bytes"`
	Host      string   `json:"host,omitempty"`
	Removed   []string `json:"removed,omitempty"`
	Notes     []string `json:"notes,omitempty"`
}

// Failback brings a committed failover home. The recovered VM's disks
// are synchronised to the original disks block by block, only differing
// blocks written (or, with alternate, copied whole, allocated data only,
// to new fixed VHDs <disk>.vhd in that folder, for a primary whose disks
// were lost), first while the recovered VM runs; then it is shut down, a
// short final pass sends what changed meanwhile, and the VM starts at the
// primary. The item is then FailedBack until CommitFailback. The
// recovered disks are only ever read, so stopping a failback anywhere
// damages neither side: before the final pass the recovered VM still
// runs; after it, the same command finishes the job.
func (r *Runner) Failback(ctx context.Context, vm, alternate string) (FailbackResult, error) {
	s, err := r.open(ctx, vm)
	if err != nil {
		return FailbackResult{VM: vm}, err
	}
	defer s.close()
	switch s.it.State {
	case vault.StateCommitted:
		fb, err := s.newFailback(ctx, alternate)
		if err != nil {
			return s.failbackResult(), err
		}
		s.it.State, s.it.Failback = vault.StateFailbackInProgress, fb
		if err := s.save(); err != nil {
			return s.failbackResult(), err
		}
	case vault.StateFailbackInProgress:
		if fb := s.it.Failback; alternate != "" && !replica.SameFile(alternate, fb.Alternate) {
			return s.failbackResult(), refuse("another failback of VM %s is in progress; run %s to finish it", vm, again(vm, fb))
		}
	case vault.StateFailedOver:
		return s.failbackResult(), refuse("VM %s is FailedOver to point %s (awaiting commit): commit it first with asr failover commit %s, then fail back", vm, s.it.Failover.Point, vm)
	case vault.StateFailedBack:
		return s.failbackResult(), refuse("VM %s has failed back and runs at the primary; run asr failback commit %s", vm, vm)
	case vault.StateFailbackCommitted:
		return s.failbackResult(), refuse("VM %s has failed back (committed); run asr reprotect %s at the primary to replicate it again", vm, vm)
	default:
		return s.failbackResult(), refuse("VM %s is %s: failback is for a VM whose failover was committed (asr failover %s --planned or --unplanned, then asr failover commit %s)", vm, s.it.State, vm, vm)
	}
	err = s.runFailback(ctx)
	return s.failbackResult(), err
}

// newFailback plans a failback and checks, before anything is written,
// that every recovered disk can be read and that each disk it writes is
// there (the original) or can be made (alternate).
func (s *session) newFailback(ctx context.Context, alternate string) (*vault.Failback, error) {
	fb := &vault.Failback{Step: stepSync, Started: time.Now().UTC()}
	if alternate != "" {
		abs, err := filepath.Abs(alternate)
		if err != nil {
			return nil, fmt.Errorf("alternate location %s: %w", alternate, errors.Join(replica.ErrLocal, err))
		}
		if err := checkDir(abs, "--alternate-location"); err != nil {
			return nil, err
		}
		fb.Alternate = abs
	}
	for _, rec := range s.it.Failover.Disks {
		var err error
		if s.t.Local() {
			_, err = os.Stat(rec.Path)
		} else {
			_, err = s.t.DiskSize(ctx, rec.Path)
		}
		if err != nil {
			return nil, fmt.Errorf("recovered disk %s of VM %s: %w; without it there is nothing to fail back", rec.Path, s.it.VM, errors.Join(replica.ErrNotFound, err))
		}
	}
	for _, d := range s.it.Disks {
		fb.Disks = append(fb.Disks, vault.ResyncDisk{Name: d.Name, Full: true, ReadReplica: true, Total: d.Size})
		p := homePath(fb, d)
		if fb.Alternate != "" {
			if _, err := os.Lstat(p); err == nil {
				return nil, fmt.Errorf("%s exists; fail back to another --alternate-location, or remove it: %w", p, replica.ErrExists)
			}
			continue
		}
		f, err := homeFormat(p, d)
		if err != nil {
			return nil, err
		}
		dst, err := vhd.OpenAs(p, f)
		if errors.Is(err, os.ErrNotExist) {
			err = errors.Join(replica.ErrNotFound, err)
		}
		if err != nil {
			return nil, fmt.Errorf("original disk %s of VM %s: %w; if the primary lost it, fail back with --alternate-location DIR", p, s.it.VM, err)
		}
		size := dst.Size()
		dst.Close()
		if size != d.Size {
			return nil, fmt.Errorf("original disk %s has %d bytes, the recovered disk %d; restore its size or fail back with --alternate-location DIR: %w", p, size, d.Size, replica.ErrInvalid)
		}
		if inUse(p) {
			return nil, refuse("%s is in use: a VM still runs on the original disk at the primary; shut it down first", p)
		}
	}
	return fb, nil
}

// runFailback takes a failback from its Step to done, saving after each
// step and each sync batch, so a rerun goes on where a kill stopped it.
func (s *session) runFailback(ctx context.Context) error {
	fb := s.it.Failback
	if fb.Step == stepSync {
		if err := s.syncBack(ctx, fb); err != nil {
			return err
		}
		replica.Crashpoint("failback-sync")
		fb.Step, fb.FirstSent = stepShutdown, fb.Sent()
		if err := s.save(); err != nil {
			return err
		}
	}
	if fb.Step == stepShutdown {
		if err := s.stopForFailback(ctx); err != nil {
			return err
		}
		replica.Crashpoint("failback-shutdown")
		for i := range fb.Disks {
			d := &fb.Disks[i]
			d.Next, d.Compared, d.ComparedAtNext, d.Read, d.Done = 0, 0, 0, 0, false
		}
		fb.Step = stepFinal
		if err := s.save(); err != nil {
			return err
		}
	}
	if fb.Step == stepFinal {
		if err := s.syncBack(ctx, fb); err != nil {
			return err
		}
		replica.Crashpoint("failback-final")
		fb.Step = stepStart
		if err := s.save(); err != nil {
			return err
		}
	}
	for _, d := range s.it.Disks {
		os.Remove(s.mapPath(d)) // the final pass is done: the maps are spent
	}
	os.Remove(s.r.Engine.Vault.Path() + ".failback")
	if fb.Step == stepStart {
		if err := s.startHome(ctx, fb); err != nil {
			return err
		}
		replica.Crashpoint("failback-started")
		fb.Step = stepDone
	}
	return s.publishFailback(ctx, vault.StateFailedBack)
}

// stopForFailback shuts the recovered VM down before the final pass.
// With no host driver, a local disk some process still holds is
// refused; disks on a remote target can't be probed, so a driver is
// needed there.
func (s *session) stopForFailback(ctx context.Context) error {
	f := s.it.Failover
	err := s.h.Shutdown(ctx, s.hostVM(f))
	switch {
	case errors.Is(err, host.ErrUnsupported) && !s.t.Local():
		return refuse("no host driver is configured to shut the recovered VM %s down, and asr can't see whether it still writes its disks on the target: shut it down and set host.driver (a host.shutdown command that returns once it is off), then run asr failback %s again", f.Name, s.it.VM)
	case errors.Is(err, host.ErrUnsupported):
		for _, d := range f.Disks {
			if inUse(d.Path) {
				return refuse("%s is in use by the recovered VM %s; shut it down (or set host.driver), then run asr failback %s again: the first pass is kept", d.Path, f.Name, s.it.VM)
			}
		}
		return nil
	case err != nil:
		return fmt.Errorf("shut the recovered VM %s down: %v; it may still run: run asr failback %s again once the host answers: %w", f.Name, err, s.it.VM, ErrState)
	}
	return nil
}

// startHome starts the VM at the primary on its failed-back disks.
func (s *session) startHome(ctx context.Context, fb *vault.Failback) error {
	vm := s.sourceVM()
	vm.Disks = s.homeDisks(fb)
	if fb.Alternate != "" {
		vm.Dir = fb.Alternate
	}
	if m := s.it.Machine; m != nil {
		vm.MemoryMiB, vm.CPUs, vm.Network = m.MemoryMiB, m.CPUs, m.Network
		vm.Kernel, vm.Initrd, vm.Cmdline = m.Kernel, m.Initrd, m.Cmdline
	}
	err := s.h.Start(ctx, vm, false)
	switch {
	case errors.Is(err, host.ErrUnsupported):
		fb.Host = fmt.Sprintf("VM not started (no host driver configured): start %s at the primary from %s", vm.Name, strings.Join(vm.Disks, " "))
	case err != nil:
		return fmt.Errorf("start %s at the primary: %v; its disks are ready: fix the host and run asr failback %s again: %w", vm.Name, err, s.it.VM, replica.ErrTarget)
	default:
		fb.Host = fmt.Sprintf("VM %s started at the primary by the %s host driver", vm.Name, s.hn)
	}
	return nil
}

// CommitFailback makes a failback final: the VM runs at the primary on
// the failed-back disks (an alternate location's disks become the
// protected disks) and waits for asr reprotect to replicate again. What
// the failover made at the recovery site, now stale, is removed as a test
// failover's cleanup removes it: the VM through the host driver, its
// disks and files.
func (r *Runner) CommitFailback(ctx context.Context, vm string) (FailbackResult, error) {
	s, err := r.open(ctx, vm)
	if err != nil {
		return FailbackResult{VM: vm}, err
	}
	defer s.close()
	switch s.it.State {
	case vault.StateFailbackCommitted:
		res := s.failbackResult()
		res.Notes = append(res.Notes, "already committed")
		return res, nil
	case vault.StateFailedBack:
	case vault.StateFailbackInProgress:
		return s.failbackResult(), refuse("the failback of VM %s is not finished (next step: %s); run %s first", vm, s.it.Failback.Step, again(vm, s.it.Failback))
	default:
		return s.failbackResult(), refuse("VM %s is %s: there is no failback to commit; asr failback %s brings a committed failover home", vm, s.it.State, vm)
	}
	var rm Result
	if err := s.removeRecovered(ctx, s.it.Failover, &rm); err != nil {
		return s.failbackResult(), err
	}
	replica.Crashpoint("failback-removed")
	fb := s.it.Failback
	if fb.Alternate != "" {
		for i := range s.it.Disks {
			d := &s.it.Disks[i]
			d.Path, d.Format = homePath(fb, *d), string(vhd.TypeFixed)
		}
	}
	err = s.publishFailback(ctx, vault.StateFailbackCommitted)
	res := FailbackResult{VM: vm, State: s.it.State, Point: s.it.Failover.Point, Disks: s.homeDisks(fb), Removed: rm.Removed, Notes: rm.Notes}
	return res, err
}

// publishFailback records the failback's state on the target, so the
// primary's own state file learns the VM is home, then here.
func (s *session) publishFailback(ctx context.Context, state string) error {
	f, fb := s.it.Failover, s.it.Failback
	rec := catalog.Failover{VM: s.it.VM, Kind: f.Kind, Site: s.site.Name, State: state, Point: f.Point, Time: f.Started}
	if fb.Alternate != "" {
		rec.Disks = map[string]string{}
		for _, d := range s.it.Disks {
			rec.Disks[d.Name] = homePath(fb, d)
		}
	}
	if err := catalog.PutFailover(ctx, s.t, rec); err != nil {
		return err
	}
	s.it.State = state
	return s.save()
}

func (s *session) failbackResult() FailbackResult {
	res := FailbackResult{VM: s.it.VM, State: s.it.State}
	if s.it.Failover != nil {
		res.Point = s.it.Failover.Point
	}
	fb := s.it.Failback
	if fb == nil {
		return res
	}
	res.Disks, res.Alternate, res.Host = s.homeDisks(fb), fb.Alternate, fb.Host
	for _, d := range fb.Disks {
		res.Compared += d.Compared
	}
	res.Sent = fb.Sent()
	if fb.Step != stepSync && fb.Step != stepShutdown {
		res.FinalSent = res.Sent - fb.FirstSent
		for _, d := range fb.Disks {
			res.FinalRead += d.Read
		}
	}
	return res
}

func (s *session) homeDisks(fb *vault.Failback) []string {
	var out []string
	for _, d := range s.it.Disks {
		out = append(out, homePath(fb, d))
	}
	return out
}

// homePath is where a failback writes disk d.
func homePath(fb *vault.Failback, d vault.Disk) string {
	if fb.Alternate == "" {
		return d.Path
	}
	return filepath.Join(fb.Alternate, d.Name+".vhd")
}

// again is the failback command to run again for fb.
func again(vm string, fb *vault.Failback) string {
	if fb.Alternate == "" {
		return "asr failback " + vm
	}
	return "asr failback " + vm + " --alternate-location " + fb.Alternate
}
