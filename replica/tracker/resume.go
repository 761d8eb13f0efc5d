package tracker

import (
	"errors"
	"fmt"
	"os"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/hrl"
)

// The resync set, <disk>.asr-resync: the granules a resync must compare,
// in the dirty map's format. Resume writes it from everything that may
// differ between the replica and the disk (the dirty map, and every write
// the logs not yet shipped hold) before it deletes those logs, and a set
// already there is merged, never replaced, so a resync interrupted at any
// point keeps its evidence. The resync deletes it when it is done.
func resyncPath(disk string) string { return disk + ".asr-resync" }

// ReadResyncSet reads the granules a resync of the disk must compare;
// os.ErrNotExist when no resync was prepared for it.
func ReadResyncSet(disk string) (*Dirty, error) { return readMap(resyncPath(disk)) }

// RemoveResyncSet deletes the resync set once the resync is done.
func RemoveResyncSet(disk string) error {
	if err := os.Remove(resyncPath(disk)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Resume readies a running tracker's disks for a resync and returns, per
// disk, the log after which its chain now continues (the resync's base):
// a disk still logging has its active log sealed, as by Rotate; a
// degraded disk logs again, in a new chain starting after a fresh ID. For
// every disk the resync set then holds what the replica may lack, and the
// logs up to the base are deleted: the resync replaces them, and the logs
// after the base carry every write made while it runs.
func (t *Tracker) Resume() (map[string]Sealed, error) {
	base, err := t.Rotate()
	if err != nil {
		return nil, err
	}
	t.rotMu.Lock()
	defer t.rotMu.Unlock()
	for _, d := range t.disks {
		d.cpMu.Lock()
		defer d.cpMu.Unlock()
	}
	type restart struct {
		log *hrl.Writer
		dm  *dirtyMap
		id  uuid.UUID
	}
	rs := make([]restart, len(t.disks))
	for i, d := range t.disks {
		dm := d.dirty.Load()
		if dm == nil {
			continue
		}
		id := uuid.New()
		w, err := hrl.Create(LogPath(d.path, dm.fromSeq), hrl.Options{PreviousID: id})
		if err != nil {
			return nil, fmt.Errorf("resume logging for disk %s: %w", d.Name, err)
		}
		t.synced(w.Path())
		rs[i] = restart{w, dm, id}
	}
	t.mu.Lock()
	for i, d := range t.disks {
		if rs[i].log != nil {
			d.log, d.seq, d.written = rs[i].log, rs[i].dm.fromSeq, newBitmap(d.size)
			d.dirty.Store(nil)
		}
	}
	t.mu.Unlock()
	var errs []error
	for i, d := range t.disks {
		upTo, ok := base[d.Name]
		if rs[i].log != nil {
			upTo = Sealed{Seq: rs[i].dm.fromSeq - 1, ID: rs[i].id.String()}
			base[d.Name] = upTo
		} else if !ok {
			errs = append(errs, fmt.Errorf("disk %s: no log was sealed", d.Name))
			continue
		}
		errs = append(errs, collectSet(d.path, d.size, rs[i].dm, upTo.Seq))
		os.Remove(markerPath(d.path))
		d.space.refresh()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return base, nil
}

// ResumeOffline is Resume for a disk no tracker serves; the caller holds
// the VM's tracker lock. It first recovers what a crashed tracker left,
// then starts the chain again after a fresh ID, numbered after every log
// there was, and stamps the disk: its content is the resync's to compare.
func ResumeOffline(s DiskSpec) (Sealed, error) {
	end, err := recoverDisk(s)
	if err != nil && !errors.Is(err, ErrUntrusted) {
		return Sealed{}, err
	}
	var dm *dirtyMap
	if d, err := ReadDirty(s.Path); err == nil {
		if dm, err = loadDirtyMap(s.Path, d.Size); err != nil {
			dm = nil
		}
	}
	fi, err := os.Stat(s.Path)
	if err != nil {
		return Sealed{}, err
	}
	upTo := max(end.Seq, s.AppliedSeq)
	if dm != nil {
		upTo = max(upTo, dm.fromSeq-1)
	}
	logs, _ := Logs(s.Path)
	for _, l := range logs {
		upTo = max(upTo, l.Seq)
	}
	size := s.Size
	if size == 0 {
		size = fi.Size()
	}
	if err := collectSet(s.Path, size, dm, upTo); err != nil {
		return Sealed{}, err
	}
	os.Remove(markerPath(s.Path))
	if err := Stamp(s.Path); err != nil {
		return Sealed{}, err
	}
	return Sealed{Seq: upTo, ID: uuid.NewString()}, nil
}

// collectSet merges into the disk's resync set the granules of dm (nil:
// none) and of every write in its logs numbered up to upTo, then deletes
// those logs and the dirty map. A log that can't be read marks the whole
// disk. The set is durable before anything is deleted.
func collectSet(disk string, size int64, dm *dirtyMap, upTo uint64) error {
	set := loadResyncSet(disk, size)
	if _, err := os.Stat(dirtyPath(disk)); err == nil && dm == nil {
		set.mark(0, size) // a dirty map that could not be read
	}
	if dm != nil {
		set.bits.or(dm.bits)
	}
	logs, err := Logs(disk)
	if err != nil {
		return err
	}
	for _, f := range logs {
		if f.Seq > upTo {
			continue
		}
		l, err := hrl.Open(f.Path)
		if err != nil {
			set.mark(0, size)
			break
		}
		for _, e := range l.Entries {
			set.mark(e.Off, e.Len)
		}
	}
	if err := set.persistTo(resyncPath(disk)); err != nil {
		return err
	}
	for _, f := range logs {
		if f.Seq <= upTo {
			os.Remove(f.Path)
		}
	}
	if err := os.Remove(dirtyPath(disk)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// MarkResyncSet adds byte ranges [off, end) of a disk of the given size
// to its resync set, for a verify that found them different.
func MarkResyncSet(disk string, size int64, ranges [][2]int64) error {
	set := loadResyncSet(disk, size)
	for _, r := range ranges {
		set.mark(r[0], r[1]-r[0])
	}
	return set.persistTo(resyncPath(disk))
}

// loadResyncSet returns the disk's resync set to add to: the one there,
// an empty one, or, for one damaged or of another size, every granule.
func loadResyncSet(disk string, size int64) *dirtyMap {
	set := newDirtyMap(size, "resync", 0)
	old, err := ReadResyncSet(disk)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil || old.Size != size || old.Granule != granule:
		set.mark(0, size)
	default:
		for i, w := range old.Bits {
			set.bits.w[i].Store(w)
		}
	}
	return set
}

// Written returns, per disk, the granules written since the last rotation
// (and, for a degraded disk, every granule its dirty map marks). A write
// reaches the map before the disk, so a block read from the disk before
// Written is called and not marked held the content of the last rotation.
func (t *Tracker) Written() map[string][]uint64 {
	out := map[string][]uint64{}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, d := range t.disks {
		w := d.written.words()
		if dm := d.dirty.Load(); dm != nil {
			for i, x := range dm.bits.words() {
				w[i] |= x
			}
		}
		out[d.Name] = w
	}
	return out
}
