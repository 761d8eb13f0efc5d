package failover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/asr-project/asr/chunker"
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
	var inRanges func(int) bool // the recovered disk's allocated blocks
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
	sync := replica.Sync{Src: src, SrcName: "recovered disk " + rec.Path, Size: d.Size,
		Sink: replica.FileSink(dst), SinkDesc: "disk " + dst.Path(), Save: s.save,
		Progress: func(done, total int64) {
			if s.r.Progress != nil {
				s.r.Progress(d.Name, done, total)
			}
		}}
	if err := s.failbackMap(fb, d, rd, &sync); err != nil {
		return err
	}
	if sync.ByMap {
		// The sink is known from the map: a block the recovered disk has
		// not allocated and the map holds as zeros is equal.
		sync.Want = func(i int) bool { return inRanges(i) || !sync.Map.Zero(i) }
	} else {
		have, err := dst.Extents()
		if err != nil {
			return fmt.Errorf("disk %s: %w", dst.Path(), err)
		}
		ranges = append(ranges, have...)
	}
	inRanges = blocksIn(ranges)
	if !sync.ByMap {
		sync.Want = inRanges
	}
	if err := replica.SyncBlocks(ctx, sync, rd); err != nil {
		return fmt.Errorf("fail back disk %s: %w; run %s again to go on", d.Name, err, again(s.it.VM, fb))
	}
	return nil
}

// failbackMap gives a pass the primary disk's checksum map, kept beside
// the state file from the first pass on: the first pass builds it from
// every block it compares, so the final pass, run while the recovered VM
// is down, reads only the recovered disk. A first pass resumed without
// its map marks the disk to be read back instead (ReadReplica).
func (s *session) failbackMap(fb *vault.Failback, d vault.Disk, rd *vault.ResyncDisk, sync *replica.Sync) error {
	path := s.mapPath(d)
	sync.SaveMap = func(t *chunker.Table) error { return saveMap(path, t) }
	var tab *chunker.Table
	var err error
	switch {
	case fb.Step == stepSync && rd.Next == 0:
		tab, err = chunker.NewTable(d.Size, replica.BlockSize)
		rd.ReadReplica = false
	case !rd.ReadReplica:
		if tab, err = loadMap(path, d.Size); err != nil {
			tab, err = nil, nil
			rd.ReadReplica = true
		}
	}
	if err != nil {
		return err
	}
	sync.Map, sync.ByMap = tab, tab != nil && fb.Step == stepFinal
	return nil
}

// mapPath is where a failback keeps disk d's map.
func (s *session) mapPath(d vault.Disk) string {
	return filepath.Join(s.r.Engine.Vault.Path()+".failback", s.it.VM+"."+d.Name+".map")
}

func saveMap(path string, t *chunker.Table) error {
	b, err := t.Map().MarshalBinary()
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o700)
	}
	if err == nil {
		err = writeSynced(path, b)
	}
	if err != nil {
		return fmt.Errorf("failback map %s: %w", path, errors.Join(replica.ErrLocal, err))
	}
	return nil
}

// writeSynced replaces path with b whole: a reader, or a kill, sees the
// old file or the new one.
func writeSynced(path string, b []byte) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func loadMap(path string, size int64) (*chunker.Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := chunker.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	if m.Size != size || m.BlockSize != replica.BlockSize {
		return nil, fmt.Errorf("failback map %s is for %d bytes in %d-byte blocks", path, m.Size, m.BlockSize)
	}
	return m.Table()
}

// openHomeDisk opens the disk a failback writes: the original, or a
// fixed VHD in the alternate folder, made on first use.
func (s *session) openHomeDisk(fb *vault.Failback, d vault.Disk) (*vhd.Disk, error) {
	p := homePath(fb, d)
	if fb.Alternate == "" {
		f, err := homeFormat(p, d)
		if err != nil {
			return nil, err
		}
		dst, err := vhd.OpenWritableAs(p, f)
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

// homeFormat is how failback opens an original disk: it writes VHD and
// raw itself; a disk in a format qemu serves is refused with the way round
// (in-place failback through qemu-nbd is not built yet).
func homeFormat(p string, d vault.Disk) (vhd.Format, error) {
	f := replica.DiskFormat(d)
	if vf, ok := f.VHD(); ok {
		return vf, nil
	}
	return "", fmt.Errorf("original disk %s is %s, which failback does not write in place; fail back with --alternate-location DIR (fixed VHDs) and convert them with qemu-img convert -O %s: %w", p, f, f, replica.ErrInvalid)
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
