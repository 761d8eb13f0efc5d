package tracker

// zeroChunk bounds the buffer WriteZeroes logs at a time.
const zeroChunk = 1 << 20

var zeros = make([]byte, zeroChunk)

// Size is the disk's virtual size.
func (d *Disk) Size() int64 { return d.vd.Size() }

// ReadAt reads the disk; reads are not logged.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) { return d.vd.ReadAt(p, off) }

// WriteAt logs p and writes it to the disk; it returns after both.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	d.t.mu.RLock()
	defer d.t.mu.RUnlock()
	if d.t.failed != nil {
		return 0, d.t.failed
	}
	// The log and the disk are written at once: each is a copy into the
	// page cache, and on a small host doing them one after the other
	// doubles the time a VM waits for its write.
	done := make(chan error, 1)
	go func() { done <- d.log.Write(off, p) }()
	n, err := d.vd.WriteAt(p, off)
	if lerr := <-done; lerr != nil {
		return 0, d.t.fail(lerr)
	}
	if err != nil {
		// The log now holds a write the disk may lack: stop rather than let
		// source and replica part silently. The open log forces a resync.
		return n, d.t.fail(err)
	}
	return n, nil
}

// Flush makes every acknowledged write durable in the log and the disk.
func (d *Disk) Flush() error {
	d.t.mu.RLock()
	defer d.t.mu.RUnlock()
	if d.t.failed != nil {
		return d.t.failed
	}
	if err := d.log.Flush(); err != nil {
		return d.t.fail(err)
	}
	return d.vd.Sync()
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
