package replica

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/image"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/vault"
)

// Tracking is a running tracker and the VM tracker lock it holds.
type Tracking struct {
	*tracker.Tracker
	VM   string
	lock *vault.Lock
}

// StartTracker is the one way a tracker starts: it takes the VM's tracker
// lock (waiting up to timeout), and only then reads where each disk's log
// chain stands, so the numbering can't trail a replicate cycle that
// recorded a point and is deleting its logs.
func (e *Engine) StartTracker(vm string, timeout time.Duration, opt tracker.Options) (*Tracking, error) {
	if err := CheckName("VM", vm); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.TrackDir(), 0o700); err != nil {
		return nil, err
	}
	lockPath, _ := tracker.Paths(e.TrackDir(), vm)
	lock, err := vault.LockFile(lockPath, timeout)
	if err != nil {
		return nil, fmt.Errorf("asr track for %s: %w", vm, err)
	}
	var it vault.Item
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { it, err = tx.Item(vm); return }); err != nil {
		lock.Unlock()
		return nil, err
	}
	if err := checkSources(it); err != nil {
		lock.Unlock()
		return nil, err
	}
	tr, err := tracker.Start(TrackSpecs(it), opt)
	if err != nil {
		lock.Unlock()
		return nil, trackError(err)
	}
	return &Tracking{Tracker: tr, VM: vm, lock: lock}, nil
}

// Close stops the tracker (sealing its logs) and releases the lock.
func (t *Tracking) Close() error {
	err := t.Tracker.Close()
	t.lock.Unlock()
	return err
}

// trackError classes a tracker's refusal for the exit codes.
func trackError(err error) error {
	switch {
	case errors.Is(err, tracker.ErrInUse):
		return errors.Join(err, vault.ErrLocked)
	case errors.Is(err, tracker.ErrResized):
		return errors.Join(err, ErrBadData)
	}
	return err
}

// checkSources says every source disk of an item is still there.
func checkSources(it vault.Item) error {
	for _, d := range it.Disks {
		if _, err := os.Stat(d.Path); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("source disk %s of VM %s is missing; restore it, or disable protection: %w", d.Path, it.VM, ErrNotFound)
		}
	}
	return nil
}

// diskFormat is how a protected disk is opened: as the kind protection
// recorded, never guessed again.
// DiskFormat is how a protected disk is opened: raw, or a VHD of any kind.
func DiskFormat(d vault.Disk) image.Format { return image.FormatOf(d.Format) }

// TrackSpecs says where each of the item's disks stands in its log chain,
// for a tracker to continue it.
func TrackSpecs(it vault.Item) []tracker.DiskSpec {
	return mapDisks(&it, func(d vault.Disk) tracker.DiskSpec {
		id, _ := uuid.Parse(d.AppliedID)
		return tracker.DiskSpec{Name: d.Name, Path: d.Path, Size: d.Size, AppliedSeq: d.AppliedSeq, AppliedID: id, Format: DiskFormat(d)}
	})
}

// Tracked reports whether an asr track serves the VM's disks right now,
// so writes may still be arriving.
func (e *Engine) Tracked(vm string) bool {
	l, err := e.lockTracker(vm)
	if err != nil {
		return errors.Is(err, vault.ErrLocked)
	}
	l.Unlock()
	return false
}
