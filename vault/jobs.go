package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// interruptedError is the Error of a job found Running with nobody holding
// its VM's lock.
const interruptedError = "interrupted: the process running it ended without finishing (killed or crashed); the next run resumes it"

// LockVM takes the operation lock of one VM for a long job; a second holder
// waits up to the vault's timeout, then gets ErrLocked. Every job holds its
// VM's lock while it runs, so a job of this VM still Running now belongs to
// a process that died: LockVM marks it Interrupted before returning.
func (v *Vault) LockVM(vm string) (*Lock, error) { return v.lockAndSweep(vm, v.timeout) }

// TryLockVM is LockVM without the wait: ErrLocked at once when another
// process holds the VM.
func (v *Vault) TryLockVM(vm string) (*Lock, error) { return v.lockAndSweep(vm, 0) }

func (v *Vault) lockAndSweep(vm string, timeout time.Duration) (*Lock, error) {
	l, err := v.lockVM(vm, timeout)
	if err != nil {
		return nil, err
	}
	if err := v.markInterrupted(vm); err != nil {
		l.Unlock()
		return nil, err
	}
	return l, nil
}

// errNoChange rolls back an Update that found nothing to do: bbolt writes
// a new meta page and freelist on every commit, even an empty one.
var errNoChange = errors.New("no change")

// markInterrupted runs interrupt in one Update; the caller holds vm's lock.
func (v *Vault) markInterrupted(vm string) error {
	err := v.Update(func(tx *Tx) error { return tx.interrupt(vm) })
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}

// SweepJobs marks Interrupted every Running job whose VM lock it can take
// at once (a held lock means the job is really running). It returns the
// state file's errors (ErrCorrupt among them); a VM it can't lock or
// write for now (ErrLocked, ErrAccess) is left for a later sweep.
func (v *Vault) SweepJobs() error {
	var vms []string
	err := v.View(func(tx *Tx) error {
		return tx.eachRunning(func(j Job) error {
			if checkLockName(j.VM) == nil && !slices.Contains(vms, j.VM) {
				vms = append(vms, j.VM)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, vm := range vms {
		l, err := v.lockVM(vm, 0)
		if skippable(err) {
			continue
		} else if err != nil {
			return err
		}
		err = v.markInterrupted(vm)
		l.Unlock()
		if err != nil && !skippable(err) {
			return err
		}
	}
	return nil
}

func skippable(err error) bool { return errors.Is(err, ErrLocked) || errors.Is(err, ErrAccess) }

// lockVM validates the name before it builds any path from it.
func (v *Vault) lockVM(vm string, timeout time.Duration) (*Lock, error) {
	if err := checkLockName(vm); err != nil {
		return nil, err
	}
	dir := v.path + ".locks"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, accessOr(v.path, fmt.Errorf("lock directory: %w", err))
	}
	return LockFile(filepath.Join(dir, vm+".lock"), timeout)
}

// interrupt marks the VM's Running jobs Interrupted, or returns
// errNoChange when there are none. The caller holds the
// VM's lock, so none of them can be running; reading them inside this
// transaction (not from an earlier View) keeps a job that finished
// meanwhile as it is.
func (t *Tx) interrupt(vm string) error {
	var stale []Job
	err := t.eachRunning(func(j Job) error {
		if j.VM == vm {
			stale = append(stale, j)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(stale) == 0 {
		return errNoChange
	}
	now := time.Now().UTC()
	for _, j := range stale {
		j.State, j.Ended, j.Error = JobInterrupted, now, interruptedError
		j.Duration = now.Sub(j.Started)
		if n := len(j.Steps); n > 0 && j.Steps[n-1].State == JobRunning {
			j.Steps[n-1].State = JobInterrupted
		}
		if err := t.PutJob(&j); err != nil {
			return err
		}
	}
	return nil
}

// runningMark is in the JSON of every Running job; it lets eachRunning
// decode only the few candidates rather than every job on record.
var runningMark = []byte(`"state":"` + JobRunning + `"`)

// eachRunning calls fn with every Running job.
func (t *Tx) eachRunning(fn func(Job) error) (err error) {
	defer t.catch(&err)
	b := t.tx.Bucket(bJobs)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, data := c.First(); k != nil; k, data = c.Next() {
		if !bytes.Contains(data, runningMark) {
			continue
		}
		var j Job
		if err := json.Unmarshal(data, &j); err != nil {
			return t.corrupt(fmt.Sprintf("job record %x: %v", k, err))
		}
		if j.State == JobRunning {
			if err := fn(j); err != nil {
				return err
			}
		}
	}
	return nil
}
