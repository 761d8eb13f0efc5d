package failover

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/vault"
)

// run takes a failover from its Step to done, saving after each step, so
// the same command run again after a kill goes on from where it stopped.
// Every step is safe to redo: the disks are rewritten whole (their files
// are this failover's own), and starting a running VM is success.
func (s *session) run(ctx context.Context, f *vault.Failover) error {
	if f.Step == stepDisks {
		if err := s.makeDisks(ctx, f); err != nil {
			return err
		}
		replica.Crashpoint("failover-disks")
		f.Step = stepStart
		if err := s.save(); err != nil {
			return err
		}
	}
	if f.Step == stepStart {
		if err := s.start(ctx, f); err != nil {
			return err
		}
		replica.Crashpoint("failover-started")
		f.Step = stepDone
		return s.save()
	}
	return nil
}

// makeDisks writes the point's disks: fixed VHDs in the folder on a Local
// target, else copies of the point's snapshots on the target plus a
// deployment template in the folder.
func (s *session) makeDisks(ctx context.Context, f *vault.Failover) error {
	if s.t.Local() {
		var protected []string
		err := s.r.Engine.Vault.View(func(tx *vault.Tx) (err error) { protected, err = tx.SourceDisks(); return })
		if err != nil {
			return err
		}
		// Force: the files are this failover's, from an earlier run of it.
		_, _, err = Export(ctx, s.t, s.it.VM, f.Point, f.Dir, ExportOptions{Force: true, Protected: protected, Progress: s.r.Progress})
		if err != nil {
			return err
		}
		for i := range f.Disks {
			f.Disks[i].Done = true
		}
		return nil
	}
	for i, d := range f.Disks {
		if d.Done {
			continue
		}
		src := s.it.Disks[i].Replica
		// A copy a killed run began is this failover's own: start it over.
		if err := s.t.DeleteDisk(ctx, d.Path); err != nil {
			return fmt.Errorf("remove the unfinished recovery disk %s: %w", d.Path, err)
		}
		if err := s.t.CopyFromSnapshot(ctx, src, f.Point, d.Path); err != nil {
			return fmt.Errorf("copy %s at %s to %s: %w", src, f.Point, d.Path, err)
		}
		f.Disks[i].Done = true
		if err := s.save(); err != nil {
			return err
		}
		replica.Crashpoint("failover-disk")
	}
	return s.writeTemplate(f)
}

// hostVM is the VM as the host driver at the recovery site sees it.
func (s *session) hostVM(f *vault.Failover) host.VM {
	vm := host.VM{Name: f.Name, Dir: f.Dir}
	for _, d := range f.Disks {
		p := d.Path
		if !s.t.Local() {
			p = diskURL(s.t, d.Path)
		}
		vm.Disks = append(vm.Disks, p)
	}
	if m := s.it.Machine; m != nil {
		vm.MemoryMiB, vm.CPUs, vm.Network = m.MemoryMiB, m.CPUs, m.Network
		vm.Kernel, vm.Initrd, vm.Cmdline = m.Kernel, m.Initrd, m.Cmdline
		if f.Kind == KindTest {
			vm.Network = m.TestNetwork
		}
	}
	return vm
}

// sourceVM is the protected VM at the primary.
func (s *session) sourceVM() host.VM {
	vm := host.VM{Name: s.it.HostName()}
	for _, d := range s.it.Disks {
		vm.Disks = append(vm.Disks, d.Path)
		vm.Dir = filepath.Dir(d.Path)
	}
	return vm
}

// start starts the VM at the recovery site. asr says it started a VM only
// when a host driver did.
func (s *session) start(ctx context.Context, f *vault.Failover) error {
	err := s.h.Start(ctx, s.hostVM(f), f.Kind == KindTest)
	switch {
	case errors.Is(err, host.ErrUnsupported) && !s.t.Local():
		f.Host = fmt.Sprintf("VM not created (no host driver configured): the disks are page blobs; deploy %s", templatePath(f))
	case errors.Is(err, host.ErrUnsupported):
		f.Host = fmt.Sprintf("VM not started (no host driver configured): start %s from the disks in %s", f.Name, f.Dir)
	case err != nil:
		return fmt.Errorf("start %s at the recovery site: %v; its disks are ready in %s: fix the host and run the same command again: %w", f.Name, err, f.Dir, replica.ErrTarget)
	case f.Kind == KindTest:
		f.Host = fmt.Sprintf("VM %s started isolated by the %s host driver", f.Name, s.hn)
	default:
		f.Host = fmt.Sprintf("VM %s started by the %s host driver", f.Name, s.hn)
	}
	return nil
}

// finish runs a planned or unplanned failover's remaining steps and
// records it FailedOver.
func (s *session) finish(ctx context.Context, f *vault.Failover) (Result, error) {
	if err := s.run(ctx, f); err != nil {
		return s.result(f), err
	}
	err := s.publish(ctx, vault.StateFailedOver)
	return s.result(f), err
}

// publish records a finished planned or unplanned failover on the target,
// so the other site sees the VM has moved, then in the state file.
func (s *session) publish(ctx context.Context, state string) error {
	f := s.it.Failover
	err := catalog.PutFailover(ctx, s.t, catalog.Failover{VM: s.it.VM, Kind: f.Kind, Site: s.site.Name, State: state, Point: f.Point, Time: f.Started})
	if err != nil {
		return err
	}
	s.it.State = state
	return s.save()
}

func (s *session) result(f *vault.Failover) Result {
	r := Result{VM: s.it.VM, State: s.it.State}
	if f == nil {
		return r
	}
	r.Kind, r.Point, r.PointTime, r.Name, r.Dir, r.Host = f.Kind, f.Point, f.PointTime, f.Name, f.Dir, f.Host
	for _, d := range s.hostVM(f).Disks {
		r.Disks = append(r.Disks, d)
	}
	if !s.t.Local() {
		r.Template = templatePath(f)
	}
	if !f.LastWrite.IsZero() {
		r.LastWrite = f.LastWrite
		r.Loss = max(0, f.LastWrite.Sub(f.PointTime))
	}
	return r
}
