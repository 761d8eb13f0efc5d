package file

import (
	"context"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/asr-project/asr/replica/target"
)

var _ target.FileWriter = (*Target)(nil)

// cloneChunk is how much WriteSnapshotFile resolves per hold of the disk's
// shared lock, so replication goes on between chunks.
const cloneChunk = 64 << 20

// WriteSnapshotFile writes a snapshot into f at the same offsets, from the
// files the snapshot is read from: shared blocks (FICLONERANGE) where the
// file system has reflink, else an in-kernel copy (copy_file_range), else
// read and write; only their data extents, so holes stay holes. Each
// chunk takes the shared lock anew: a write between chunks first saves
// the granule's pre-image into the newest snapshot, so the next chunk's
// sources still give exactly this snapshot's bytes.
func (t *Target) WriteSnapshotFile(ctx context.Context, disk, snapshot string, f *os.File) (int64, error) {
	var done int64
	for off := int64(0); ; off += cloneChunk {
		h, size, snaps, i, err := t.open(ctx, disk, snapshot)
		if err != nil {
			return done, err
		}
		if off >= size {
			h.unlock()
			return done, nil
		}
		n, err := h.cloneChunk(snaps, i, f, off, min(off+cloneChunk, size))
		h.unlock()
		done += n
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return done, err
		}
	}
}

// cloneChunk moves [off, end) of the snapshot into dst. Shared lock held.
func (h *held) cloneChunk(snaps []snapInfo, i int, dst *os.File, off, end int64) (int64, error) {
	paths, source := []string{h.t.vhdPath(h.enc)}, func(uint64) int { return 0 }
	if len(snaps) > 0 {
		var err error
		if paths, source, err = h.sources(snaps, i); err != nil {
			return 0, err
		}
	}
	files := make([]*os.File, len(paths))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	var n int64
	for pos := off; pos < end; {
		src := source(uint64(pos / granule))
		stop := min((pos/granule+1)*granule, end)
		for stop < end && source(uint64(stop/granule)) == src {
			stop = min(stop+granule, end)
		}
		if files[src] == nil {
			f, err := os.Open(paths[src])
			if err != nil {
				return n, ioErr("open", paths[src], err)
			}
			files[src] = f
		}
		exts, err := dataBetween(files[src], pos, stop)
		if err != nil {
			return n, err
		}
		for _, e := range exts {
			a, b := max(e.Off, pos), min(e.Off+e.Len, stop)
			if a >= b {
				continue
			}
			if err := moveRange(files[src], dst, a, b-a); err != nil {
				return n, ioErr("copy to "+dst.Name()+" from", paths[src], err)
			}
			n += b - a
		}
		pos = stop
	}
	return n, nil
}

// moveRange puts src's [off, off+n) at the same offset of dst: a reflink,
// else an in-kernel copy, else a plain one.
func moveRange(src, dst *os.File, off, n int64) error {
	err := unix.IoctlFileCloneRange(int(dst.Fd()), &unix.FileCloneRange{Src_fd: int64(src.Fd()), Src_offset: uint64(off), Src_length: uint64(n), Dest_offset: uint64(off)})
	if err == nil {
		return nil
	}
	for done := int64(0); done < n; {
		so, do := off+done, off+done
		c, err := unix.CopyFileRange(int(src.Fd()), &so, int(dst.Fd()), &do, int(n-done), 0)
		if err != nil || c == 0 {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
				return plainCopy(src, dst, off+done, n-done)
			}
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		done += int64(c)
	}
	return nil
}

func plainCopy(src, dst *os.File, off, n int64) error {
	buf := make([]byte, min(n, 4<<20))
	for done := int64(0); done < n; {
		p := buf[:min(int64(len(buf)), n-done)]
		if _, err := src.ReadAt(p, off+done); err != nil {
			return err
		}
		if _, err := dst.WriteAt(p, off+done); err != nil {
			return err
		}
		done += int64(len(p))
	}
	return nil
}
