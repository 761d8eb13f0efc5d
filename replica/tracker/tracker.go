package tracker

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/vhd"
)

// ErrClosed: the tracker was closed or a rotation failed; writes are refused
// rather than left untracked.
var ErrClosed = errors.New("tracker closed")

// DiskSpec names a disk to track and where its log chain stands.
type DiskSpec struct {
	Name string
	Path string
	// AppliedSeq and AppliedID name the last log already applied to the
	// replica (and deleted); the chain continues from there when no newer
	// log file exists.
	AppliedSeq uint64
	AppliedID  uuid.UUID
}

// Sealed names the last sealed log of a disk.
type Sealed struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

// Tracker logs every write to a VM's disks.
type Tracker struct {
	// mu is held shared by each write and exclusively by Rotate and Close,
	// so a rotation falls between writes on every disk at once.
	mu     sync.RWMutex
	disks  []*Disk
	failed error
	closed bool
}

// Disk is one tracked disk. It implements the NBD server's Backend.
type Disk struct {
	t    *Tracker
	Name string
	vd   *vhd.Disk
	path string
	log  *hrl.Writer
	seq  uint64
}

// Start opens the disks for writing and begins a new log on each, chained
// to the disk's newest log file or, when none is left, to AppliedID.
func Start(specs []DiskSpec) (*Tracker, error) {
	t := &Tracker{}
	for _, s := range specs {
		d, err := t.open(s)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.disks = append(t.disks, d)
	}
	return t, nil
}

func (t *Tracker) open(s DiskSpec) (*Disk, error) {
	seq, prev := s.AppliedSeq, s.AppliedID
	logs, err := Logs(s.Path)
	if err != nil {
		return nil, err
	}
	if n := len(logs); n > 0 && logs[n-1].Seq > seq {
		seq = logs[n-1].Seq
		// A damaged newest log still lends its ID if the header reads; if
		// not, the chain breaks here and the replicate cycle will resync.
		info, _ := hrl.Inspect(logs[n-1].Path)
		prev = info.UniqueID
	}
	if errors.Is(CheckUntracked(s.Path, false), ErrUntracked) {
		// Keep the evidence: this tracker's own stamp at Close would hide it.
		if err := os.WriteFile(markerPath(s.Path), nil, 0o600); err != nil {
			return nil, err
		}
	}
	vd, err := vhd.OpenWritable(s.Path)
	if err != nil {
		return nil, fmt.Errorf("track disk %s: %w", s.Name, err)
	}
	d := &Disk{t: t, Name: s.Name, vd: vd, path: s.Path, seq: seq}
	if err := d.newLog(prev); err != nil {
		vd.Close()
		return nil, err
	}
	return d, nil
}

func (d *Disk) newLog(prev uuid.UUID) error {
	w, err := hrl.Create(LogPath(d.path, d.seq+1), hrl.Options{PreviousID: prev})
	if err != nil {
		return fmt.Errorf("start log for disk %s: %w", d.Name, err)
	}
	d.seq++
	d.log = w
	return nil
}

// Disks returns the tracked disks in the order given to Start.
func (t *Tracker) Disks() []*Disk { return t.disks }

// Rotate seals the active log of every disk at one instant and opens their
// successors. It returns the sealed log of each disk by name.
func (t *Tracker) Rotate() (map[string]Sealed, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed != nil {
		return nil, t.failed
	}
	out := make(map[string]Sealed, len(t.disks))
	for _, d := range t.disks {
		id := d.log.ID()
		if err := d.vd.Sync(); err != nil {
			return nil, t.fail(fmt.Errorf("rotate: sync disk %s: %w", d.Name, err))
		}
		if err := d.log.Close(); err != nil {
			return nil, t.fail(fmt.Errorf("rotate: close log of disk %s: %w", d.Name, err))
		}
		out[d.Name] = Sealed{Seq: d.seq, ID: id.String()}
		if err := d.newLog(id); err != nil {
			d.log = nil
			return nil, t.fail(err)
		}
	}
	return out, nil
}

// fail stops the tracker from taking more writes: a write that cannot be
// logged must not reach the disk untracked.
func (t *Tracker) fail(err error) error {
	t.failed = fmt.Errorf("%w: %v", ErrClosed, err)
	return err
}

// Close seals every active log properly and closes the disks. After Close
// every write fails with ErrClosed.
func (t *Tracker) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for _, d := range t.disks {
		if d.log != nil {
			errs = append(errs, d.vd.Sync(), d.log.Close())
			d.log = nil
		}
		errs = append(errs, d.vd.Close())
		if t.failed == nil {
			// Every write to the disk is in a sealed log now.
			errs = append(errs, Stamp(d.path))
		}
	}
	if t.failed == nil {
		t.failed = ErrClosed
	}
	return errors.Join(errs...)
}
