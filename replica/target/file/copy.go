package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/asr-project/asr/replica/vhd"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/asr-project/asr/replica/target"
)

// newDiskFile makes a temporary sparse disk file with its footer, locked
// so that sweep leaves it alone while this process fills it.
func (t *Target) newDiskFile(size int64) (*os.File, error) {
	dir := filepath.Join(t.dir, disksDir)
	f, err := os.CreateTemp(dir, tmpPrefix+"*.vhd")
	if err != nil {
		return nil, ioErr("create a temporary disk in", dir, err)
	}
	footer := vhd.FixedFooter(size, [16]byte(uuid.New()), time.Now())
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		err = f.Truncate(size + footerSize)
	}
	if err == nil {
		_, err = f.WriteAt(footer, size)
	}
	if err != nil {
		discard(f)
		return nil, ioErr("create", f.Name(), err)
	}
	return f, nil
}

func discard(f *os.File) {
	_ = os.Remove(f.Name())
	f.Close()
}

// install syncs a filled temporary disk file and renames it to the disk's
// name, clearing any snapshot directory a crashed DeleteDisk left. The
// disk's exclusive lock is held and the disk does not exist.
func (h *held) install(f *os.File) error {
	if err := fdatasync(f); err != nil {
		discard(f)
		return err
	}
	if err := h.dropSnapDir(); err != nil {
		discard(f)
		return err
	}
	if err := os.Rename(f.Name(), h.t.vhdPath(h.enc)); err != nil {
		discard(f)
		return ioErr("rename into place", h.t.vhdPath(h.enc), err)
	}
	f.Close()
	return syncDir(filepath.Join(h.t.dir, disksDir))
}

// CopyFromSnapshot fills a temporary file from the snapshot's ranges,
// taking the source's shared lock per chunk so that writes to the source
// go on during a long copy, and renames it into place under dst's lock.
func (t *Target) CopyFromSnapshot(ctx context.Context, disk, snapshot, dst string) error {
	denc, err := validName("disk", dst)
	if err != nil {
		return err
	}
	if _, err := os.Stat(t.vhdPath(denc)); err == nil {
		return fmt.Errorf("file target: copy destination disk %q exists (delete it or pick another name): %w", dst, target.ErrExists)
	}
	h, size, snaps, i, err := t.open(ctx, disk, snapshot)
	if err != nil {
		return err
	}
	ranges, err := h.snapRanges(snaps, i, size)
	want := snaps[i].dir
	h.unlock()
	if err != nil {
		return err
	}
	f, err := t.newDiskFile(size)
	if err != nil {
		return err
	}
	if err := t.fill(ctx, f, disk, snapshot, want, ranges); err != nil {
		discard(f)
		return err
	}
	hd, err := t.lock(ctx, dst, denc, true, true)
	if err != nil {
		discard(f)
		return err
	}
	defer hd.unlock()
	if _, err := t.statDisk(dst, denc); !errors.Is(err, target.ErrNotFound) {
		discard(f)
		if err == nil {
			err = fmt.Errorf("file target: copy destination disk %q was created during the copy: %w", dst, target.ErrExists)
		}
		return err
	}
	return hd.install(f)
}

const copyChunk = 4 << 20

// fill copies the ranges of snapshot directory want into f, skipping
// all-zero granules so the copy stays sparse.
func (t *Target) fill(ctx context.Context, f *os.File, disk, snapshot, want string, ranges []target.Extent) error {
	buf := make([]byte, copyChunk)
	for _, r := range ranges {
		for pos := r.Off; pos < r.Off+r.Len; {
			n := min(copyChunk, r.Off+r.Len-pos)
			if err := t.readChunk(ctx, disk, snapshot, want, buf[:n], pos); err != nil {
				return err
			}
			for o := int64(0); o < n; o += granule {
				part := buf[o:min(o+granule, n)]
				if allZero(part) {
					continue
				}
				if _, err := f.WriteAt(part, pos+o); err != nil {
					return ioErr("write", f.Name(), err)
				}
			}
			pos += n
		}
	}
	return nil
}

// readChunk reads part of a snapshot under a fresh shared lock, failing if
// the snapshot was deleted (even if re-made under its name) since the copy
// began.
func (t *Target) readChunk(ctx context.Context, disk, snapshot, want string, p []byte, off int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file target: copying snapshot %q of %q: %w", snapshot, disk, err)
	}
	h, _, snaps, i, err := t.open(ctx, disk, snapshot)
	if err != nil {
		return err
	}
	defer h.unlock()
	if snaps[i].dir != want {
		return fmt.Errorf("file target: snapshot %q of %q was deleted during the copy: %w", snapshot, disk, target.ErrNotFound)
	}
	return h.readSnap(snaps, i, p, off)
}
