package tracker

import (
	"errors"
	"fmt"
	"os"
)

// zeroChunk bounds the buffer WriteZeroes logs at a time.
const zeroChunk = 1 << 20

var zeros = make([]byte, zeroChunk)

// Size is the disk's virtual size.
func (d *Disk) Size() int64 { return d.size }

// ReadAt reads the disk; reads are not logged.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) { return d.vd.ReadAt(p, off) }

// WriteAt logs p and writes it to the disk; it returns after both. A write
// that cannot be logged still reaches the disk (the disk is then degraded,
// see the package doc); only the disk's own failure fails it.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	n := int64(len(p))
	if n == 0 {
		return 0, nil
	}
	if d.isClosed() {
		return 0, ErrClosed
	}
	r := d.ranges.lock(off, n)
	defer d.ranges.unlock(r)
	a, b, err := d.al.begin(off, n)
	if errors.Is(err, errALWrite) {
		d.degradeAll(err.Error())
	} else if err != nil {
		return 0, err // a checkpoint failed: the disk itself would not sync
	}
	defer d.al.end(a, b)
	d.t.mu.RLock()
	defer d.t.mu.RUnlock()
	if d.t.closed {
		return 0, ErrClosed
	}
	d.writes.Add(1)
	// The written map is marked before the degraded check and degrade
	// stores its map before it reads the written map, so a write racing a
	// degrade lands in one map or the other.
	d.written.mark(off, n)
	if dm := d.dirty.Load(); dm != nil {
		dm.mark(off, n)
		return d.writeDisk(p, off)
	}
	if why := d.space.take(n); why != "" {
		d.degrade(why, d.seq, nil)
		d.dirty.Load().mark(off, n)
		return d.writeDisk(p, off)
	}
	// The log and the disk are written at once: each is a copy into the
	// page cache, and on a small host doing them one after the other
	// doubles the time a VM waits for its write. The range lock keeps
	// overlapping writes in one order on both.
	done := make(chan error, 1)
	go func() {
		d.t.jitter()
		done <- d.log.Write(off, p)
	}()
	d.t.jitter()
	m, err := d.writeDisk(p, off)
	if lerr := <-done; lerr != nil {
		d.degrade("the log could not be written: "+lerr.Error(), d.seq, nil)
	}
	d.wb.wrote(n)
	return m, err
}

// writeDisk writes the disk; if that fails the log may hold bytes the disk
// lacks, so logging stops and the region is marked.
func (d *Disk) writeDisk(p []byte, off int64) (int, error) {
	m, err := d.vd.WriteAt(p, off)
	if err != nil {
		d.degrade("a disk write failed: "+err.Error(), d.seq, nil)
		d.dirty.Load().mark(off, int64(len(p)))
	}
	return m, err
}

func (d *Disk) isClosed() bool {
	d.t.mu.RLock()
	defer d.t.mu.RUnlock()
	return d.t.closed
}

// Flush makes every acknowledged write durable: in the log (or the dirty
// map) and on the disk.
func (d *Disk) Flush() error {
	if d.isClosed() {
		return ErrClosed
	}
	return d.checkpoint()
}

// checkpoint makes every write completed before it durable, which lets
// their extents leave the activity log.
func (d *Disk) checkpoint() error {
	d.cpMu.Lock()
	defer d.cpMu.Unlock()
	if d.isClosed() {
		return ErrClosed
	}
	e := d.al.startCheckpoint()
	if err := d.syncRecords(); err != nil {
		return err
	}
	if err := d.syncDisk(); err != nil {
		return err
	}
	d.al.finishCheckpoint(e)
	d.space.refreshSometimes()
	return nil
}

// syncRecords makes the log's metadata durable or, degraded, the dirty
// map. A log that fails degrades the disk; a dirty map that can't be
// written fails the flush, since nothing else would remember those writes.
func (d *Disk) syncRecords() error {
	if d.dirty.Load() == nil {
		if err := d.log.Flush(); err != nil {
			d.degrade("the log could not be flushed: "+err.Error(), d.seq, nil)
		} else {
			d.t.synced(d.log.Path())
		}
	}
	if dm := d.dirty.Load(); dm != nil {
		if err := dm.persist(d.path); err != nil {
			return err
		}
		d.t.synced(dirtyPath(d.path))
	}
	return nil
}

func (d *Disk) syncDisk() error {
	if err := d.vd.Sync(); err != nil {
		return fmt.Errorf("sync disk %s: %w", d.Name, err)
	}
	d.t.synced(d.path)
	return nil
}

// degrade stops logging for the disk: from now on the dirty map records
// which granules change. The map starts with every write the dropped logs
// (fromSeq and later) held, from their written maps (the current log's,
// and prev, a log being sealed), and is persisted at once. Every write is
// marked in the written map before it reaches log or disk, so the
// activity log's extents add nothing here; they join the map only after a
// crash, when the in-memory marks are gone (recoverDegraded).
func (d *Disk) degrade(why string, fromSeq uint64, prev *bitmap) {
	d.dmu.Lock()
	defer d.dmu.Unlock()
	if d.dirty.Load() != nil {
		return
	}
	dm := newDirtyMap(d.size, fmt.Sprintf("tracking stopped for disk %s: %s", d.Name, why), fromSeq)
	d.dirty.Store(dm)
	dm.bits.or(d.written)
	if prev != nil {
		dm.bits.or(prev)
	}
	// An error here is retried at the next flush, which fails until the
	// map is durable; until then the activity log covers the writes.
	dm.persist(d.path)
	d.log.Close()
	removeLogsFrom(d.path, fromSeq)
}

// degradeAll degrades with every granule marked: the activity log can't
// bound what a crash would hide any more.
func (d *Disk) degradeAll(why string) {
	d.degrade(why, d.seq, nil)
	d.dirty.Load().mark(0, d.size)
}

// removeLogsFrom deletes a disk's logs numbered seq and later.
func removeLogsFrom(disk string, seq uint64) {
	logs, _ := Logs(disk)
	for _, l := range logs {
		if l.Seq >= seq {
			os.Remove(l.Path)
		}
	}
}

// Trim is acknowledged without changing the disk, so the log has nothing to
// record (see the package doc).
func (d *Disk) Trim(off, n int64) error { return nil }

// WriteZeroes writes zeroes through WriteAt so the log carries them.
func (d *Disk) WriteZeroes(off, n int64) error {
	for n > 0 {
		c := min(n, zeroChunk)
		if _, err := d.WriteAt(zeros[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}
