package failover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// syncBack runs one pass over every disk from its checkpoint.
func (s *session) syncBack(ctx context.Context, fb *vault.Failback) error {
	for i, d := range s.it.Disks {
		rd := &fb.Disks[i]
		if rd.Done {
			continue
		}
		if err := s.syncDisk(ctx, fb, d, rd); err != nil {
			return err
		}
	}
	return nil
}

// syncDisk makes one primary disk equal its recovered disk. Blocks that
// neither disk has allocated are zeros on both sides and are not read,
// so a new disk in the alternate folder gets the recovered disk's
// allocated data only.
func (s *session) syncDisk(ctx context.Context, fb *vault.Failback, d vault.Disk, rd *vault.ResyncDisk) error {
	rec := s.it.Failover.Disks[slices.IndexFunc(s.it.Failover.Disks, func(r vault.RecoveryDisk) bool { return r.Name == d.Name })]
	var src io.ReaderAt
	var ranges []vhd.Extent
	if s.t.Local() {
		f, err := vhd.Open(rec.Path)
		if err != nil {
			return fmt.Errorf("recovered disk %s: %w", rec.Path, err)
		}
		defer f.Close()
		if ranges, err = f.Extents(); err != nil {
			return fmt.Errorf("recovered disk %s: %w", rec.Path, err)
		}
		src = f
	} else {
		exts, err := s.t.Ranges(ctx, rec.Path, "")
		if err != nil {
			return fmt.Errorf("recovered disk %s: %w", rec.Path, err)
		}
		for _, x := range exts {
			ranges = append(ranges, vhd.Extent{Off: x.Off, Len: x.Len})
		}
		src = replica.TargetReader(ctx, s.t, rec.Path)
	}
	dst, err := s.openHomeDisk(fb, d)
	if err != nil {
		return err
	}
	defer dst.Close()
	// qemu's image locks, as asr track holds them: no VM or tracker may
	// open the disk while it is being written, nor is it written under one.
	lock, err := tracker.LockImage(dst.Path())
	if err != nil {
		return refuse("disk %s is in use (%v): stop the VM or asr track that holds it at the primary, then run %s again", dst.Path(), err, again(s.it.VM, fb))
	}
	defer lock.Close()
	have, err := dst.Extents()
	if err != nil {
		return fmt.Errorf("disk %s: %w", dst.Path(), err)
	}
	want := blocksIn(append(ranges, have...))
	progress := func(done, total int64) {
		if s.r.Progress != nil {
			s.r.Progress(d.Name, done, total)
		}
	}
	err = replica.SyncBlocks(ctx, src, "recovered disk "+rec.Path, d.Size, replica.FileSink(dst), "disk "+dst.Path(), rd, want, s.save, progress)
	if err != nil {
		return fmt.Errorf("fail back disk %s: %w; run %s again to go on", d.Name, err, again(s.it.VM, fb))
	}
	return nil
}

// openHomeDisk opens the disk a failback writes: the original, or a
// fixed VHD in the alternate folder, made on first use.
func (s *session) openHomeDisk(fb *vault.Failback, d vault.Disk) (*vhd.Disk, error) {
	p := homePath(fb, d)
	if fb.Alternate == "" {
		dst, err := vhd.OpenWritableAs(p, replica.DiskFormat(d))
		if err != nil {
			return nil, fmt.Errorf("original disk %s: %w", p, err)
		}
		return dst, nil
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		dst, err := vhd.CreateFixed(p, d.Size)
		if err != nil {
			return nil, fmt.Errorf("new disk %s: %w", p, errors.Join(replica.ErrLocal, err))
		}
		return dst, nil
	}
	dst, err := vhd.OpenWritable(p)
	if err != nil {
		return nil, fmt.Errorf("new disk %s: %w", p, err)
	}
	return dst, nil
}

// blocksIn selects the sync blocks that overlap any of the ranges.
func blocksIn(ranges []vhd.Extent) func(int) bool {
	slices.SortFunc(ranges, func(a, b vhd.Extent) int { return cmp.Compare(a.Off, b.Off) })
	var merged []vhd.Extent
	for _, x := range ranges {
		if k := len(merged) - 1; k >= 0 && x.Off <= merged[k].Off+merged[k].Len {
			merged[k].Len = max(merged[k].Len, x.Off+x.Len-merged[k].Off)
		} else {
			merged = append(merged, x)
		}
	}
	ranges = merged
	return func(i int) bool {
		lo, hi := int64(i)*replica.BlockSize, int64(i+1)*replica.BlockSize
		k := sort.Search(len(ranges), func(k int) bool { return ranges[k].Off+ranges[k].Len > lo })
		return k < len(ranges) && ranges[k].Off < hi
	}
}
