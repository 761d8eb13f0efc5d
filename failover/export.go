package failover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// Progress reports done of total bytes of one disk.
type Progress func(disk string, done, total int64)

// ExportOptions says what an export may do to the files in its folder.
type ExportOptions struct {
	// Force replaces an existing file that is not a protected disk.
	Force bool
	// Protected are the site's protected source disks: an export never
	// writes over one of them, with Force or not.
	Protected []string
	Progress  Progress
}

// FindPoint returns a VM's recovery point from the target: "" or "latest"
// is the newest.
func FindPoint(ctx context.Context, t target.Target, vm, id string) (catalog.Point, error) {
	pts, err := catalog.Points(ctx, t, vm)
	if err != nil {
		return catalog.Point{}, err
	}
	if len(pts) == 0 {
		return catalog.Point{}, fmt.Errorf("VM %s has no recovery point yet; run asr replicate: %w", vm, replica.ErrNotFound)
	}
	if id == "" || id == "latest" {
		return pts[len(pts)-1], nil
	}
	for _, p := range pts {
		if p.ID == id {
			return p, nil
		}
	}
	return catalog.Point{}, fmt.Errorf("VM %s has no recovery point %q; see asr points %s: %w", vm, id, vm, replica.ErrNotFound)
}

// exportFile is one disk of an export, planned before anything is written.
type exportFile struct {
	disk   catalog.Disk
	path   string
	ranges []target.Extent
	alloc  int64
}

// Export writes every disk of a VM at a recovery point as a fixed VHD named
// <disk>.vhd in dir and returns the point and the files' paths. Every check
// (folder, existing files, protected disks, free space) runs before the
// first byte is written. Each file is written as <file>.partial, held by an
// flock so two exports never share it, synced, and only then given its
// name; a .partial a killed export left is reused.
func Export(ctx context.Context, t target.Target, vm, point, dir string, opt ExportOptions) (catalog.Point, []string, error) {
	m, err := catalog.ReadManifest(ctx, t, vm)
	if err != nil {
		return catalog.Point{}, nil, err
	}
	p, err := FindPoint(ctx, t, vm, point)
	if err != nil {
		return p, nil, err
	}
	for i, d := range m.Disks {
		if size, ok := p.Sizes[d.Name]; ok {
			m.Disks[i].Size = size // a disk grown after the point
		}
	}
	files, err := planExport(ctx, t, m, p.ID, dir, opt)
	if err != nil {
		return p, nil, err
	}
	var out []string
	for _, f := range files {
		if err := exportDisk(ctx, t, f, p.ID, opt); err != nil {
			return p, out, err
		}
		out = append(out, f.path)
	}
	return p, out, syncDir(dir)
}

func planExport(ctx context.Context, t target.Target, m catalog.Manifest, point, dir string, opt ExportOptions) ([]exportFile, error) {
	if err := checkDir(dir, "--dir"); err != nil {
		return nil, err
	}
	var files []exportFile
	var need int64
	for _, d := range m.Disks {
		f := exportFile{disk: d, path: filepath.Join(dir, d.Name+".vhd")}
		for _, src := range opt.Protected {
			if replica.SameFile(src, f.path) {
				return nil, fmt.Errorf("%s is the protected disk %s; export to another --dir: %w", f.path, src, replica.ErrExists)
			}
		}
		if st, err := os.Lstat(f.path); err == nil {
			if !opt.Force {
				return nil, fmt.Errorf("%s exists; export to another --dir, or pass --force to replace it: %w", f.path, replica.ErrExists)
			}
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("%s exists and is not a regular file (%v); --force replaces only files: %w", f.path, st.Mode().Type(), replica.ErrExists)
			}
		}
		var err error
		if f.ranges, err = t.Ranges(ctx, d.Replica, point); err != nil {
			return nil, fmt.Errorf("replica %s at %s: %w", d.Replica, point, err)
		}
		for _, r := range f.ranges {
			f.alloc += r.Len
		}
		need += f.alloc
		files = append(files, f)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil {
		if free := int64(fs.Bavail) * fs.Bsize; free < need {
			return nil, fmt.Errorf("export folder %s has %d bytes free, the disks need %d: %w", dir, free, need, replica.ErrLocal)
		}
	}
	return files, nil
}

// checkDir makes sure dir, given by flag (--dir, --alternate-location),
// is a folder asr can create files in.
func checkDir(dir, flag string) error {
	what := "export folder"
	if flag != "--dir" {
		what = flag
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("%s %s is not a folder; give %s a folder: %w", what, dir, flag, replica.ErrLocal)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s %s can't be created: %w", what, dir, errors.Join(replica.ErrLocal, err))
	}
	probe, err := os.CreateTemp(dir, ".asr-probe-*")
	if err != nil {
		return fmt.Errorf("%s %s is not writable: %w", what, dir, errors.Join(replica.ErrLocal, err))
	}
	probe.Close()
	return os.Remove(probe.Name())
}

func exportDisk(ctx context.Context, t target.Target, f exportFile, point string, opt ExportOptions) error {
	tmp := f.path + ".partial"
	lf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("export %s: %w", f.path, errors.Join(replica.ErrLocal, err))
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("another asr is exporting to %s; wait for it: %w", tmp, vault.ErrLocked)
	}
	published := false
	defer func() {
		if !published {
			os.Remove(tmp)
		}
	}()
	size := vhd.RoundSize(f.disk.Size)
	if err := lf.Truncate(0); err != nil {
		return fmt.Errorf("export %s: %w", f.path, errors.Join(replica.ErrLocal, err))
	}
	if fw, ok := t.(target.FileWriter); ok {
		// The replica's own blocks, shared (reflink) where the file
		// system can; the footer goes on after, at the VHD's size.
		n, err := fw.WriteSnapshotFile(ctx, f.disk.Replica, point, lf)
		if err != nil {
			return fmt.Errorf("export %s from %s at %s: %w", f.path, f.disk.Replica, point, err)
		}
		if opt.Progress != nil {
			opt.Progress(f.disk.Name, n, f.alloc)
		}
		if err := lf.Truncate(size); err != nil {
			return fmt.Errorf("export %s: %w", f.path, errors.Join(replica.ErrLocal, err))
		}
	}
	if _, err := lf.WriteAt(vhd.FixedFooter(size, uuid.New(), time.Now()), size); err != nil {
		return fmt.Errorf("export %s: %w", f.path, errors.Join(replica.ErrLocal, err))
	}
	if _, ok := t.(target.FileWriter); ok {
		if err := lf.Sync(); err != nil {
			return fmt.Errorf("export %s: %w", f.path, errors.Join(replica.ErrLocal, err))
		}
	} else if err := readRanges(ctx, t, f, point, tmp, opt.Progress); err != nil {
		return err
	}
	if err := publish(tmp, f.path, opt.Force); err != nil {
		return err
	}
	published = true
	return nil
}

// readRanges writes the point's ranges into the VHD at tmp through the
// target's ReadAt.
func readRanges(ctx context.Context, t target.Target, f exportFile, point, tmp string, progress Progress) error {
	out, err := vhd.OpenWritable(tmp)
	if err != nil {
		return fmt.Errorf("export %s: %w", f.path, err)
	}
	defer out.Close()
	if err := copyRanges(ctx, t, f, point, out, progress); err != nil {
		return err
	}
	if err := errors.Join(out.Sync(), out.Close()); err != nil {
		return fmt.Errorf("export %s: %w", f.path, errors.Join(replica.ErrLocal, err))
	}
	return nil
}

func copyRanges(ctx context.Context, t target.Target, f exportFile, point string, out *vhd.Disk, progress Progress) error {
	buf := make([]byte, target.MaxWrite)
	var done int64
	for _, r := range f.ranges {
		for off := r.Off; off < r.Off+r.Len; {
			n := min(int64(len(buf)), r.Off+r.Len-off, f.disk.Size-off)
			if n <= 0 {
				break
			}
			p := buf[:n]
			if err := t.ReadAt(ctx, f.disk.Replica, point, p, off); err != nil {
				return fmt.Errorf("read replica %s at %s offset %d: %w", f.disk.Replica, point, off, err)
			}
			if !vhd.IsZero(p) {
				if _, err := out.WriteAt(p, off); err != nil {
					return fmt.Errorf("export %s: %w", f.path, errors.Join(replica.ErrLocal, err))
				}
			}
			off += n
			done += n
			if progress != nil {
				progress(f.disk.Name, done, f.alloc)
			}
		}
	}
	return nil
}

// publish gives the finished file its name. Without force a hard link
// does it, so a file that appeared meanwhile is never replaced.
func publish(tmp, path string, force bool) error {
	if force {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("export %s: %w", path, errors.Join(replica.ErrLocal, err))
		}
		return nil
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s appeared during the export; pass --force to replace it: %w", path, replica.ErrExists)
		}
		return fmt.Errorf("export %s: %w", path, errors.Join(replica.ErrLocal, err))
	}
	return os.Remove(tmp)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("export folder %s: %w", dir, errors.Join(replica.ErrLocal, err))
	}
	defer d.Close()
	return d.Sync()
}
