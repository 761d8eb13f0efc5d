package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/asr-project/asr/replica/target"
)

// statDisk returns the virtual size of an existing disk file.
func (t *Target) statDisk(disk, enc string) (int64, error) {
	path := t.vhdPath(enc)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("file target: disk %q: %w", disk, target.ErrNotFound)
	}
	if err != nil {
		return 0, ioErr("stat", path, err)
	}
	n := fi.Size() - footerSize
	if n <= 0 || n%target.SizeUnit != 0 {
		return 0, fmt.Errorf("file target: %s is %d bytes, not a virtual size (a multiple of %d) plus a %d-byte footer (restore the disk or delete it and resync): %w",
			path, fi.Size(), target.SizeUnit, footerSize, ErrCorrupt)
	}
	return n, nil
}

// CreateDisk makes a sparse fixed VHD: a hole of size bytes and the footer.
func (t *Target) CreateDisk(ctx context.Context, disk string, size int64) error {
	enc, err := validName("disk", disk)
	if err != nil {
		return err
	}
	if size <= 0 || size%target.SizeUnit != 0 {
		return fmt.Errorf("file target: disk %q: size %d is not a positive multiple of %d: %w", disk, size, target.SizeUnit, target.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := t.lock(ctx, disk, enc, true, true)
	if err != nil {
		return err
	}
	defer h.unlock()
	if n, err := t.statDisk(disk, enc); err == nil {
		if n != size {
			return fmt.Errorf("file target: disk %q has %d bytes, not %d (delete it first to change its size): %w", disk, n, size, target.ErrExists)
		}
		return nil
	} else if !errors.Is(err, target.ErrNotFound) {
		return err
	}
	f, err := t.newDiskFile(size)
	if err != nil {
		return err
	}
	return h.install(f)
}

// DiskSize returns the disk's virtual size.
func (t *Target) DiskSize(ctx context.Context, disk string) (int64, error) {
	enc, err := validName("disk", disk)
	if err != nil {
		return 0, err
	}
	h, err := t.lock(ctx, disk, enc, false, false)
	if err != nil {
		return 0, err
	}
	defer h.unlock()
	return t.statDisk(disk, enc)
}

// WritePages is a batch of one write.
func (t *Target) WritePages(ctx context.Context, disk string, off int64, p []byte) error {
	return t.WriteBatch(ctx, disk, []target.Write{{Off: off, P: p}})
}

// WriteBatch writes under the shared lock while the disk has no snapshot,
// so batches to different ranges run in parallel, and under the exclusive
// lock otherwise, preserving the pre-images of the whole batch first. Either
// way the batch costs one sync of the disk, and at most one of the pre file
// and one of the index: see doc.go.
func (t *Target) WriteBatch(ctx context.Context, disk string, ws []target.Write) error {
	enc, err := validName("disk", disk)
	if err != nil {
		return err
	}
	if err := target.CheckBatch(ws, math.MaxInt64); err != nil {
		return fmt.Errorf("file target: disk %q: %w", disk, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for excl := false; ; excl = true {
		h, err := t.lock(ctx, disk, enc, excl, false)
		if err != nil {
			return err
		}
		done, err := h.writeBatch(disk, ws)
		h.unlock()
		if done || err != nil {
			return err
		}
	}
}

// writeBatch returns done=false when the disk has snapshots and the lock
// is only shared: the caller retries with the exclusive lock.
func (h *held) writeBatch(disk string, ws []target.Write) (done bool, err error) {
	t := h.t
	size, err := t.statDisk(disk, h.enc)
	if err != nil {
		return true, err
	}
	if err := target.CheckBatch(ws, size); err != nil {
		return true, fmt.Errorf("file target: disk %q: %w", disk, err)
	}
	snaps, err := t.listSnaps(h.enc)
	if err != nil {
		return true, err
	}
	if len(snaps) > 0 {
		if !h.excl {
			return false, nil
		}
		if err := h.preserve(snaps[len(snaps)-1], ws); err != nil {
			return true, err
		}
	}
	path := t.vhdPath(h.enc)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return true, ioErr("open", path, err)
	}
	defer f.Close()
	for _, w := range ws {
		if _, err := f.WriteAt(w.P, w.Off); err != nil {
			return true, ioErr(fmt.Sprintf("write %d bytes at offset %d of", len(w.P), w.Off), path, err)
		}
	}
	return true, fdatasync(f)
}

// ReadAt reads the disk, or a snapshot through its pre-image chain, each
// inside its own size.
func (t *Target) ReadAt(ctx context.Context, disk, snapshot string, p []byte, off int64) error {
	h, size, snaps, i, err := t.open(ctx, disk, snapshot)
	if err != nil {
		return err
	}
	defer h.unlock()
	if off < 0 || off > size || int64(len(p)) > size-off {
		return fmt.Errorf("file target: disk %q: read of %d bytes at offset %d is outside the size %d: %w", disk, len(p), off, size, target.ErrInvalid)
	}
	if snapshot != "" {
		return h.readSnap(snaps, i, p, off)
	}
	path := t.vhdPath(h.enc)
	f, err := os.Open(path)
	if err != nil {
		return ioErr("open", path, err)
	}
	defer f.Close()
	if _, err := f.ReadAt(p, off); err != nil {
		return ioErr(fmt.Sprintf("read %d bytes at offset %d of", len(p), off), path, err)
	}
	return nil
}

// Ranges reports SEEK_DATA extents: file-system blocks, so a range may
// hold zeros.
func (t *Target) Ranges(ctx context.Context, disk, snapshot string) ([]target.Extent, error) {
	h, size, snaps, i, err := t.open(ctx, disk, snapshot)
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	if snapshot != "" {
		return h.snapRanges(snaps, i, size)
	}
	return h.snapRanges(nil, 0, size)
}

// open takes the shared lock for a read of a disk or one of its snapshots
// and returns the virtual size of what is read: the snapshot's own size
// (from its index header) when snapshot is not "", which is smaller than
// the disk's when the disk grew after it was taken.
func (t *Target) open(ctx context.Context, disk, snapshot string) (h *held, size int64, snaps []snapInfo, i int, err error) {
	enc, err := validName("disk", disk)
	if err != nil {
		return nil, 0, nil, 0, err
	}
	var senc string
	if snapshot != "" {
		if senc, err = validName("snapshot", snapshot); err != nil {
			return nil, 0, nil, 0, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, nil, 0, err
	}
	h, err = t.lock(ctx, disk, enc, false, false)
	if err != nil {
		return nil, 0, nil, 0, err
	}
	size, err = t.statDisk(disk, enc)
	if err == nil && snapshot != "" {
		snaps, err = t.listSnaps(enc)
		if i = findSnap(snaps, senc); err == nil && i < 0 {
			err = fmt.Errorf("file target: disk %q has no snapshot %q: %w", disk, snapshot, target.ErrNotFound)
		}
		if err == nil {
			size, err = h.snapSize(disk, snaps[i], size)
		}
	}
	if err != nil {
		h.unlock()
		return nil, 0, nil, 0, err
	}
	return h, size, snaps, i, nil
}

// DeleteDisk renames the snapshot directory away first, so a crash leaves
// either the disk with all its snapshots or the disk without any.
func (t *Target) DeleteDisk(ctx context.Context, disk string) error {
	enc, err := validName("disk", disk)
	if err != nil {
		return err
	}
	h, err := t.lock(ctx, disk, enc, true, false)
	if errors.Is(err, target.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer h.unlock()
	disks := filepath.Join(t.dir, disksDir)
	if err := h.dropSnapDir(); err != nil {
		return err
	}
	if err := os.Remove(t.vhdPath(enc)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ioErr("remove", t.vhdPath(enc), err)
	}
	// Removed while held: waiters find the file gone and start over.
	if err := os.Remove(t.lockPath(enc)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ioErr("remove", t.lockPath(enc), err)
	}
	return syncDir(disks)
}

// dropSnapDir removes the disk's snapshot directory, atomically as seen by
// readers. Exclusive lock held.
func (h *held) dropSnapDir() error {
	disks := filepath.Join(h.t.dir, disksDir)
	sd := h.t.snapDir(h.enc)
	del := filepath.Join(disks, delPrefix+randHex())
	if err := os.Rename(sd, del); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return ioErr("rename away", sd, err)
	}
	h.st.idxMu.Lock()
	clear(h.st.idx)
	h.st.idxMu.Unlock()
	if err := syncDir(disks); err != nil {
		return err
	}
	_ = os.RemoveAll(del) // a leftover is swept by the next New
	return nil
}
