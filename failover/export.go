package failover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// Progress reports done of total bytes of one disk.
type Progress func(disk string, done, total int64)

// FindPoint returns a VM's recovery point from the target: "" or "latest"
// is the newest.
func FindPoint(ctx context.Context, t target.Target, vm, id string) (vault.Point, error) {
	pts, err := replica.TargetPoints(ctx, t, vm)
	if err != nil {
		return vault.Point{}, err
	}
	if len(pts) == 0 {
		return vault.Point{}, fmt.Errorf("VM %s has no recovery point yet; run asr replicate: %w", vm, replica.ErrNotFound)
	}
	if id == "" || id == "latest" {
		return pts[len(pts)-1], nil
	}
	for _, p := range pts {
		if p.ID == id {
			return p, nil
		}
	}
	return vault.Point{}, fmt.Errorf("VM %s has no recovery point %q; see asr points %s: %w", vm, id, vm, replica.ErrNotFound)
}

// Export writes every disk of a VM at a recovery point as a fixed VHD named
// <disk>.vhd in dir and returns the point and the files' paths. Each file
// appears only when complete (written under a temporary name, synced,
// renamed).
func Export(ctx context.Context, t target.Target, vm, point, dir string, progress Progress) (vault.Point, []string, error) {
	m, err := replica.ReadManifest(ctx, t, vm)
	if err != nil {
		return vault.Point{}, nil, err
	}
	p, err := FindPoint(ctx, t, vm, point)
	if err != nil {
		return p, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return p, nil, fmt.Errorf("export directory %s: %w", dir, err)
	}
	var out []string
	for _, d := range m.Disks {
		path := filepath.Join(dir, d.Name+".vhd")
		if err := exportDisk(ctx, t, d, p.ID, path, progress); err != nil {
			return p, out, err
		}
		out = append(out, path)
	}
	return p, out, nil
}

func exportDisk(ctx context.Context, t target.Target, d replica.ManifestDisk, point, path string, progress Progress) error {
	tmp := path + ".partial"
	out, err := vhd.CreateFixed(tmp, d.Size)
	if err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	defer os.Remove(tmp)
	defer out.Close()
	ranges, err := t.Ranges(ctx, d.Replica, point)
	if err != nil {
		return fmt.Errorf("replica %s at %s: %w", d.Replica, point, err)
	}
	var total, done int64
	for _, r := range ranges {
		total += r.Len
	}
	buf := make([]byte, target.MaxWrite)
	for _, r := range ranges {
		for off := r.Off; off < r.Off+r.Len; {
			n := min(int64(len(buf)), r.Off+r.Len-off, d.Size-off)
			if n <= 0 {
				break
			}
			p := buf[:n]
			if err := t.ReadAt(ctx, d.Replica, point, p, off); err != nil {
				return fmt.Errorf("read replica %s at %s offset %d: %w", d.Replica, point, off, err)
			}
			if !vhd.IsZero(p) {
				if _, err := out.WriteAt(p, off); err != nil {
					return fmt.Errorf("export %s: %w", path, err)
				}
			}
			off += n
			done += n
			if progress != nil {
				progress(d.Name, done, total)
			}
		}
	}
	if err := errors.Join(out.Sync(), out.Close()); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
