package file

import (
	"context"
	"fmt"
	"os"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/internal/footer"
)

// ResizeDisk grows the disk file in place under the disk's exclusive lock,
// in an order that keeps the file's length (which is the disk's size) true
// at every step:
//
//  1. clear the old footer, which is about to become disk bytes, and
//     fdatasync, so the new region can never show it;
//  2. extend the file to the new size plus a footer (a hole);
//  3. write the new footer (same unique id and time stamp, new sizes and
//     checksum) and fdatasync.
//
// A crash after 1 leaves the old size with no footer; after 2 the new size
// with no footer. Either way the bytes below the old size are intact and
// the new region is zeros, and the retried call writes the missing footer:
// a same-size call reads the footer and rewrites it when it does not fit.
// After a crash the footer gets a fresh unique id. Snapshots are left
// alone: each keeps its size in its index header.
func (t *Target) ResizeDisk(ctx context.Context, disk string, size int64) error {
	enc, err := validName("disk", disk)
	if err != nil {
		return err
	}
	if size <= 0 || size%target.SizeUnit != 0 {
		return fmt.Errorf("file target: resize disk %q: size %d is not a positive multiple of %d: %w", disk, size, target.SizeUnit, target.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := t.lock(ctx, disk, enc, true, false)
	if err != nil {
		return err
	}
	defer h.unlock()
	old, err := t.statDisk(disk, enc)
	if err != nil {
		return err
	}
	if size < old {
		return fmt.Errorf("file target: resize disk %q from %d to %d bytes: a replica never shrinks (recreate the disk to make it smaller): %w", disk, old, size, target.ErrInvalid)
	}
	path := t.vhdPath(enc)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return ioErr("open", path, err)
	}
	defer f.Close()
	ft := make([]byte, footerSize)
	if _, err := f.ReadAt(ft, old); err != nil {
		return ioErr("read the footer of", path, err)
	}
	if size == old {
		return writeFooter(f, ft, size)
	}
	if err := writeOrPunch(f, make([]byte, footerSize), old); err != nil {
		return err
	}
	if err := fdatasync(f); err != nil {
		return err
	}
	if err := hook("resize-cleared"); err != nil {
		return err
	}
	if err := f.Truncate(size + footerSize); err != nil {
		return ioErr(fmt.Sprintf("extend to %d bytes", size+footerSize), path, err)
	}
	if err := hook("resize-extended"); err != nil {
		return err
	}
	return writeFooter(f, ft, size)
}

// writeFooter makes the footer at size the one asr writes for a disk of
// that size, carrying on from old; a footer that already fits is left
// alone, so the no-op resize costs one read.
func writeFooter(f *os.File, old []byte, size int64) error {
	if footer.Fits(old, size) {
		return nil
	}
	if _, err := f.WriteAt(footer.For(old, size), size); err != nil {
		return ioErr("write the footer of", f.Name(), err)
	}
	return fdatasync(f)
}

// snapSize returns a snapshot's virtual size, from its index header: the
// disk's size when the snapshot was taken. diskSize bounds it, since disks
// only grow.
func (h *held) snapSize(disk string, s snapInfo, diskSize int64) (int64, error) {
	ix, err := h.index(s)
	if err != nil {
		return 0, err
	}
	if ix.disk > diskSize {
		return 0, fmt.Errorf("file target: disk %q: snapshot %q is %d bytes, larger than its disk (%d): restore the target or delete the snapshot: %w",
			disk, decodeName(s.enc), ix.disk, diskSize, ErrCorrupt)
	}
	return ix.disk, nil
}
