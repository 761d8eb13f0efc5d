package file

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/asr-project/asr/replica/target"
)

// ioErr wraps a file-system error, mapping a full disk to ErrNoSpace and a
// file past the file system's limits to ErrInvalid.
func ioErr(op, path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("file target: %s %s: %w (free space on the target file system, then retry): %w", op, path, err, target.ErrNoSpace)
	case errors.Is(err, syscall.EFBIG):
		return fmt.Errorf("file target: %s %s: %w (the file system cannot hold a file this large): %w", op, path, err, target.ErrInvalid)
	}
	return fmt.Errorf("file target: %s %s: %w", op, path, err)
}

// syncDir makes a directory's entries (creations, renames, removals)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return ioErr("open directory", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return ioErr("sync directory", dir, err)
	}
	return nil
}

// fdatasync makes a file's data and size durable.
func fdatasync(f *os.File) error {
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return ioErr("sync", f.Name(), err)
	}
	return nil
}

// writeAtomic replaces dir/name with data: a temporary file in the same
// directory, written and synced, renamed over the name, then the directory
// synced. A reader sees the old file or the new one.
func writeAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return ioErr("create a temporary file in", dir, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return ioErr("write", filepath.Join(dir, name), err)
	}
	return syncDir(dir)
}

// Names starting with these are work files, never disks, snapshots or
// objects (names may not start with '.').
const (
	tmpPrefix = ".asr-tmp-"
	delPrefix = ".asr-del-"
)

// writeOrPunch writes buf at off, or punches a hole when buf is all zero so
// that preserved never-written blocks cost no space. The hole also clears
// any bytes an interrupted earlier save left there.
func writeOrPunch(f *os.File, buf []byte, off int64) error {
	if allZero(buf) {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, int64(len(buf)))
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return ioErr("punch a hole in", f.Name(), err)
		}
	}
	if _, err := f.WriteAt(buf, off); err != nil {
		return ioErr("write", f.Name(), err)
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// isHole says [off, off+n) of f is a hole (reads as zeros, holds no
// blocks); false when the file system can't tell.
func isHole(f *os.File, off, n int64) bool {
	next, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	return errors.Is(err, unix.ENXIO) || (err == nil && next >= off+n)
}

// dataRanges lists the allocated ranges of f below limit with
// SEEK_DATA/SEEK_HOLE. A file system without them reports one range.
func dataRanges(f *os.File, limit int64) ([]target.Extent, error) { return dataBetween(f, 0, limit) }

// dataBetween is dataRanges of [from, limit).
func dataBetween(f *os.File, from, limit int64) ([]target.Extent, error) {
	fd := int(f.Fd())
	var out []target.Extent
	for pos := from; pos < limit; {
		start, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return []target.Extent{{Off: from, Len: limit - from}}, nil
		}
		if err != nil {
			return nil, ioErr("seek data in", f.Name(), err)
		}
		if start >= limit {
			break
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, ioErr("seek hole in", f.Name(), err)
		}
		end = min(end, limit)
		out = append(out, target.Extent{Off: start, Len: end - start})
		pos = end
	}
	return out, nil
}

// union merges sorted extent lists into one sorted, non-overlapping list.
func union(lists ...[]target.Extent) []target.Extent {
	var all []target.Extent
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortFunc(all, func(a, b target.Extent) int { return cmp.Compare(a.Off, b.Off) })
	var out []target.Extent
	for _, e := range all {
		if n := len(out); n > 0 && e.Off <= out[n-1].Off+out[n-1].Len {
			out[n-1].Len = max(out[n-1].Len, e.Off+e.Len-out[n-1].Off)
			continue
		}
		out = append(out, e)
	}
	return out
}

// sweep removes work files that crashed runs left in disks/: renamed-away
// directories always, temporary disk files when no process holds their
// lock (a copy in progress keeps its temporary file locked).
func (t *Target) sweep() {
	dir := filepath.Join(t.dir, disksDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), delPrefix):
			_ = os.RemoveAll(p)
		case strings.HasPrefix(e.Name(), tmpPrefix):
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
				_ = os.Remove(p)
			}
			f.Close()
		}
	}
}
