package tracker

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/image"
)

// Sentinel errors.
var (
	// ErrClosed: the tracker was closed; writes are refused.
	ErrClosed = errors.New("tracker closed")
	// ErrResized: the disk's size is not the size it was protected with.
	ErrResized = errors.New("disk size changed")
)

// DiskSpec names a disk to track and where its log chain stands.
type DiskSpec struct {
	Name string
	Path string
	// Size is the virtual size the disk was protected with; a disk of
	// another size is refused. 0 skips the check.
	Size int64
	// AppliedSeq and AppliedID name the last log already applied to the
	// replica (and deleted), or the chain's starting ID before any; the
	// chain continues from there when no newer log file exists.
	AppliedSeq uint64
	AppliedID  uuid.UUID
	// Format is how the file is read, as protection recorded it (vhd,
	// raw, or a format qemu serves); image.Auto decides by content.
	Format image.Format
}

// Options tune a tracker; the zero value is the default.
type Options struct {
	// ExtentSize and Extents size the activity log (8 MiB, 2040).
	ExtentSize int64
	Extents    int
	// MinFree: logging stops for a disk when the file system holding its
	// logs has less free space than this (256 MiB), before the guest's own
	// writes could fail for want of space.
	MinFree int64
	// MaxLogBytes: logging stops for a disk when its logs waiting to ship
	// would hold more than this (default: half the disk's size, the rule
	// Hyper-V Replica uses to fall back to a resync).
	MaxLogBytes int64
	// synced, when set, is called after each fsync a tracker makes, with
	// the file's path (the crash model in the tests).
	synced func(path string)
	// jitter, when set, runs before each log append and each disk write
	// (the tests' stand-in for a busy scheduler).
	jitter func()
}

const defaultMinFree = 256 << 20

func (o Options) withDefaults() Options {
	if o.ExtentSize <= 0 {
		o.ExtentSize = defaultExtentSize
	}
	if o.Extents <= 0 || o.Extents > alMaxExtents {
		o.Extents = defaultALExtents
	}
	if o.MinFree <= 0 {
		o.MinFree = defaultMinFree
	}
	return o
}

// Sealed names the last sealed log of a disk.
type Sealed struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

// Tracker logs every write to a VM's disks.
type Tracker struct {
	// mu is held shared by each write while it touches the log and the
	// disk, and exclusively by Rotate while it switches logs and by Close,
	// so a rotation falls between writes on every disk at once. Nothing
	// holds it exclusively across an fsync.
	mu     sync.RWMutex
	rotMu  sync.Mutex // one Rotate or Close at a time
	disks  []*Disk
	closed bool
	opt    Options
}

// Disk is one tracked disk. It implements the NBD server's Backend.
type Disk struct {
	t      *Tracker
	Name   string
	path   string
	size   int64
	vd     image.Disk
	lock   *ImageLock
	ranges rangeLock
	al     *activityLog

	// cpMu serializes checkpoints (guest flushes, activity-log room) and
	// rotations. Rotate changes log, seq and written only while holding
	// it and t.mu exclusively, so under either they are stable.
	cpMu    sync.Mutex
	log     *hrl.Writer
	seq     uint64
	written *bitmap // granules written to the current log

	// dirty is set once logging stopped for this disk (degraded).
	dirty  atomic.Pointer[dirtyMap]
	dmu    sync.Mutex // degrade, one at a time
	space  space
	writes atomic.Uint64
	wb     writeback
	gone   chan struct{} // closed when the disk is released
}

// server is an image served by a process of its own (qemu-nbd).
type server interface {
	Done() <-chan struct{}
	Err() error
}

// watch degrades the disk when its server dies under it: the VM's I/O
// fails from then on, and the state says why (never a silent fallback).
// What reached the disk is uncertain, so the resync that follows compares
// what the logs being dropped held, as for any failed write.
func (d *Disk) watch(c server) {
	select {
	case <-d.gone:
		return
	case <-c.Done():
	}
	d.t.mu.RLock()
	closed, seq := d.t.closed, d.seq
	d.t.mu.RUnlock()
	if !closed {
		d.degrade(fmt.Sprintf("qemu-nbd serving the disk exited (%v); restart asr track, and check the image with qemu-img check", c.Err()), seq, nil)
	}
}

// Start takes each disk for tracking: it locks the disk file against other
// writers (qemu's image locks), checks its size, recovers a log chain left
// open by a crash, and begins a new log on each disk. A disk whose logs
// can't be trusted, or whose dirty map says logging had stopped, is served
// degraded: writes reach the disk and only the dirty map records them.
func Start(specs []DiskSpec, opt Options) (*Tracker, error) {
	t := &Tracker{opt: opt.withDefaults()}
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

func (t *Tracker) open(s DiskSpec) (_ *Disk, err error) {
	d := &Disk{t: t, Name: s.Name, path: s.Path}
	defer func() {
		if err != nil {
			d.release()
		}
	}()
	if s.Format == image.Auto {
		if s.Format, err = image.Probe(s.Path); err != nil {
			return nil, fmt.Errorf("track disk %s: %w", s.Name, err)
		}
	}
	// qemu's own server takes qemu's image locks for the formats it serves.
	if s.Format.Native() {
		if d.lock, err = LockImage(s.Path); err != nil {
			return nil, err
		}
	}
	if d.size, err = image.SizeOf(s.Path, s.Format); err != nil {
		return nil, fmt.Errorf("track disk %s: %w", s.Name, err)
	}
	if s.Size > 0 && d.size != s.Size {
		return nil, fmt.Errorf("disk %s (%s) is %d bytes, but was protected at %d; asr does not track a resized disk: %w", s.Name, s.Path, d.size, s.Size, ErrResized)
	}
	end, err := recoverDisk(s)
	if errors.Is(err, ErrUntrusted) {
		// The VM must still run: serve it degraded, everything marked.
		dm := newDirtyMap(d.size, err.Error(), s.AppliedSeq+1)
		dm.mark(0, d.size)
		if err = dm.persist(s.Path); err != nil {
			return nil, err
		}
		removeLogsFrom(s.Path, dm.fromSeq)
	} else if err != nil {
		return nil, err
	}
	if errors.Is(CheckUntracked(s.Path, false), ErrUntracked) {
		// Keep the evidence: this tracker's own stamp at Close would hide it.
		if err := os.WriteFile(markerPath(s.Path), nil, 0o600); err != nil {
			return nil, err
		}
	}
	// Opened for writing only now: qemu's server may touch the file as it
	// opens it (a VHDX's headers), and recovery and the untracked check
	// judge the file by its modification time.
	if d.vd, err = image.OpenWritable(s.Path, s.Format); err != nil {
		return nil, fmt.Errorf("track disk %s: %w", s.Name, err)
	}
	d.gone = make(chan struct{})
	if c, ok := d.vd.(server); ok {
		go d.watch(c)
	}
	if d.al, err = openAL(s.Path, d.size, t.opt.ExtentSize, t.opt.Extents, d.checkpoint, t.opt.synced); err != nil {
		return nil, err
	}
	d.space.init(s.Path, d.size, t.opt)
	d.written = newBitmap(d.size)
	if dm, err := loadDirtyMap(s.Path, d.size); err == nil {
		d.dirty.Store(dm)
		return d, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	d.seq = end.Seq
	if d.log, err = d.create(end.ID); err != nil {
		return nil, err
	}
	d.seq++
	d.space.refresh()
	d.wb.init(func() []string {
		d.t.mu.RLock()
		defer d.t.mu.RUnlock()
		return []string{d.path, d.log.Path()}
	})
	return d, nil
}

// create makes log seq+1 chained to prev.
func (d *Disk) create(prev uuid.UUID) (*hrl.Writer, error) {
	// A VHDX's DataWriteGuid goes in each log, the field MS-HRL made for
	// it; qemu changes it at the first write of a session, so a log names
	// the value the disk had when the log began.
	w, err := hrl.Create(LogPath(d.path, d.seq+1), hrl.Options{PreviousID: prev, DataWriteGUID: dataWriteGUID(d.path)})
	if err != nil {
		return nil, fmt.Errorf("start log for disk %s: %w", d.Name, err)
	}
	d.t.synced(w.Path())
	return w, nil
}

func (t *Tracker) jitter() {
	if t.opt.jitter != nil {
		t.opt.jitter()
	}
}

func (t *Tracker) synced(path string) {
	if t.opt.synced != nil {
		t.opt.synced(path)
	}
}

// release closes what open took, in reverse.
func (d *Disk) release() {
	d.wb.stop()
	if d.gone != nil {
		close(d.gone) // release runs once per disk
	}
	if d.vd != nil {
		d.vd.Close()
	}
	if d.al != nil {
		d.al.close()
	}
	if d.lock != nil {
		d.lock.Close()
	}
}

// Disks returns the tracked disks in the order given to Start.
func (t *Tracker) Disks() []*Disk { return t.disks }

// Rotate seals the active log of every disk at one instant and opens their
// successors. It returns the sealed log of each disk that is still logging,
// by name. The successors are made before, and the sealed logs made durable
// after, the instant guest writes are held off, so a rotation costs the
// guest no fsync.
func (t *Tracker) Rotate() (map[string]Sealed, error) {
	t.rotMu.Lock()
	defer t.rotMu.Unlock()
	for _, d := range t.disks {
		d.cpMu.Lock()
		defer d.cpMu.Unlock()
	}
	next := make([]*hrl.Writer, len(t.disks))
	for i, d := range t.disks {
		if d.dirty.Load() != nil {
			continue
		}
		w, err := d.create(d.log.ID())
		if err != nil {
			d.degrade("the next log could not be created: "+err.Error(), d.seq, nil)
			continue
		}
		next[i] = w
	}
	type old struct {
		log     *hrl.Writer
		seq     uint64
		written *bitmap
		epoch   uint64
	}
	olds := make([]old, len(t.disks))
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		for _, w := range next {
			if w != nil {
				w.Close()
				os.Remove(w.Path())
			}
		}
		return nil, ErrClosed
	}
	for i, d := range t.disks {
		olds[i].epoch = d.al.startCheckpoint()
		if next[i] == nil || d.dirty.Load() != nil {
			continue
		}
		olds[i] = old{d.log, d.seq, d.written, olds[i].epoch}
		d.log, d.written = next[i], newBitmap(d.size)
		d.seq++
	}
	t.mu.Unlock()

	out := make(map[string]Sealed, len(t.disks))
	var errs []error
	for i, d := range t.disks {
		o := olds[i]
		if o.log != nil {
			if err := o.log.Close(); err != nil {
				d.degrade(fmt.Sprintf("log %s could not be sealed: %v", o.log.Path(), err), o.seq, o.written)
			} else {
				t.synced(o.log.Path())
				out[d.Name] = Sealed{Seq: o.seq, ID: o.log.ID().String()}
			}
		} else if next[i] != nil {
			// Degraded after its successor was made: drop the successor.
			next[i].Close()
			os.Remove(next[i].Path())
		}
		if err := d.syncRecords(); err != nil {
			errs = append(errs, err)
		}
		if err := d.syncDisk(); err != nil {
			errs = append(errs, err)
			continue
		}
		d.al.finishCheckpoint(o.epoch)
		d.space.refresh()
	}
	return out, errors.Join(errs...)
}

// Close seals every active log properly, empties the activity logs,
// stamps and closes the disks. After Close every write fails with
// ErrClosed. Close is idempotent.
func (t *Tracker) Close() error {
	t.rotMu.Lock()
	defer t.rotMu.Unlock()
	for _, d := range t.disks {
		d.cpMu.Lock()
		defer d.cpMu.Unlock()
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	var errs []error
	for _, d := range t.disks {
		err := d.closeRecords()
		if err == nil {
			err = d.syncDisk()
		}
		errs = append(errs, err)
		if err == nil {
			errs = append(errs, d.al.empty())
		}
		// The image closes before the stamp: qemu's server still writes
		// its own metadata (a qcow2 dirty flag, a VHDX header) as it stops.
		errs = append(errs, d.vd.Close())
		d.vd = nil
		if err == nil {
			// Every write to the disk is in a sealed log or the dirty map.
			errs = append(errs, Stamp(d.path))
		}
		d.release()
	}
	return errors.Join(errs...)
}

// closeRecords seals the active log or, degraded, persists the dirty map.
func (d *Disk) closeRecords() error {
	if dm := d.dirty.Load(); dm != nil {
		return dm.persist(d.path)
	}
	if err := d.log.Close(); err != nil {
		d.degrade(fmt.Sprintf("log %s could not be sealed: %v", d.log.Path(), err), d.seq, nil)
		return d.dirty.Load().persist(d.path)
	}
	d.t.synced(d.log.Path())
	return nil
}

// Stats is what a tracker did for one disk, for `asr track`'s last words.
type Stats struct {
	Writes, ActivityLogUpdates, Checkpoints uint64
	Degraded                                string
}

// Stats returns the disk's counters.
func (d *Disk) Stats() Stats {
	s := Stats{Writes: d.writes.Load()}
	s.ActivityLogUpdates, s.Checkpoints = d.al.stats()
	if dm := d.dirty.Load(); dm != nil {
		s.Degraded = dm.reason
	}
	return s
}
