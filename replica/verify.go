package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/asr-project/asr/chunker"
	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/image"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/vault"
)

// VerifyOptions say what `asr verify` checks.
type VerifyOptions struct {
	// Point is the recovery point to check: "" or "latest" for the newest.
	// Only the newest can be compared with the source (the writes since
	// older ones are no longer kept).
	Point string
	// Sample, between 0 and 100, checks that percentage of blocks chosen
	// at random; 0 checks every block.
	Sample float64
}

// VerifyReport is what a verify found, disk by disk.
type VerifyReport struct {
	VM    string       `json:"vm"`
	Point string       `json:"point"`
	Disks []VerifyDisk `json:"disks"`
}

// VerifyDisk is one disk's result. Differ lists the ranges where the point
// and the source differ; MapDiffer those where the point and its checksum
// map at the target disagree. Skipped counts bytes not compared because
// the VM wrote them after the point (they ship with the next one).
type VerifyDisk struct {
	Name      string          `json:"name"`
	Compared  int64           `json:"compared"`
	Skipped   int64           `json:"skipped_written_since"`
	Differ    []target.Extent `json:"differ"`
	MapDiffer []target.Extent `json:"map_differ,omitempty"`
	MapUsed   bool            `json:"map_checked"`
}

// Verify proves a VM's newest recovery point: it reads the replica back
// (which holds that point while no cycle runs), block by block, and compares it with the source disk (leaving out the
// blocks the VM wrote since the point) and, where the target keeps one,
// with the replica's checksum map. Any difference is ErrMismatch, and the
// VM is marked for a resync of the blocks found (of every block after a
// sample). A full verify on a remote target also stores a fresh map.
func (e *Engine) Verify(ctx context.Context, vm string, opt VerifyOptions) (*VerifyReport, error) {
	if err := CheckName("VM", vm); err != nil {
		return nil, err
	}
	if opt.Sample < 0 || opt.Sample > 100 {
		return nil, fmt.Errorf("sample %g%%: give a percentage between 0 and 100: %w", opt.Sample, ErrInvalid)
	}
	lock, err := e.Vault.LockVM(vm)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	var it vault.Item
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { it, err = tx.Item(vm); return }); err != nil {
		return nil, err
	}
	if it.State != vault.StateProtected || it.Pending != nil || it.LastPoint == "" {
		return nil, fmt.Errorf("VM %s is %s or making a point; verify a replica once its point is finished (asr replicate %s, or asr resync %s): %w",
			vm, it.State, vm, vm, ErrInvalid)
	}
	if opt.Point != "" && opt.Point != "latest" && opt.Point != it.LastPoint {
		return nil, fmt.Errorf("point %s: only the newest point (%s) can be compared with the source; export an older one with asr points export: %w", opt.Point, it.LastPoint, ErrInvalid)
	}
	t, err := e.openTarget(ctx, it.Target)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	rep := &VerifyReport{VM: vm, Point: it.LastPoint}
	written, unlock, err := e.writtenSince(ctx, &it)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for i := range it.Disks {
		vd, err := e.verifyDisk(ctx, t, &it, i, opt.Sample, written)
		if err != nil {
			return nil, err
		}
		rep.Disks = append(rep.Disks, vd)
	}
	// The tracker's map is read last: a block it does not mark was not
	// written between the point and the reads above.
	if err := written.refresh(ctx); err != nil {
		return nil, err
	}
	return rep, e.verdict(&it, rep, written, opt.Sample > 0)
}

// verifyDisk compares disk i of the newest point with the source.
func (e *Engine) verifyDisk(ctx context.Context, t target.Target, it *vault.Item, i int, sample float64, w *writtenSet) (VerifyDisk, error) {
	d := &it.Disks[i]
	out := VerifyDisk{Name: d.Name, Differ: []target.Extent{}}
	src, err := image.Open(d.Path, DiskFormat(*d))
	if err != nil {
		return out, fmt.Errorf("disk %s: %w", d.Path, err)
	}
	defer src.Close()
	n := int((d.ReplicaSize + blockSize - 1) / blockSize)
	var tab, fresh *chunker.Table
	if !t.Local() {
		if tab, _, err = e.loadMap(ctx, t, it.VM, *d); err == nil {
			out.MapUsed = true
		}
		if sample == 0 {
			fresh, _ = chunker.NewTable(d.ReplicaSize, blockSize)
		}
	}
	blocks := pickBlocks(n, sample)
	c := newComparer(src, d.Size, "source "+d.Path, nil, "", nil)
	for a := 0; a < len(blocks); a += resyncBatch {
		idx := blocks[a:min(len(blocks), a+resyncBatch)]
		runs := blockRuns(idx)
		if err := c.readSource(runs); err != nil {
			return out, err
		}
		// The live replica, which holds the newest point while no cycle
		// runs (the VM lock keeps them off); it is what later points
		// build on, so a change to it is what matters.
		if err := readPoint(ctx, t, d.Replica, "", runs, c.rbuf); err != nil {
			return out, err
		}
		for k, b := range idx {
			s, r := c.sbuf[k*blockSize:(k+1)*blockSize], c.rbuf[k*blockSize:(k+1)*blockSize]
			ext := target.Extent{Off: int64(b) * blockSize, Len: blockSize}
			if tab != nil && !tab.Same(b, r) {
				out.MapDiffer = addExtent(out.MapDiffer, ext)
			}
			if fresh != nil {
				fresh.Set(b, r)
			}
			if !bytes.Equal(s, r) {
				out.Differ = addExtent(out.Differ, ext)
			}
			out.Compared += blockSize
		}
	}
	if fresh != nil {
		if digest, err := e.storeMap(ctx, t, it.VM, d.Name, fresh); err == nil {
			d.MapDigest, d.MapPoint = digest, ""
		}
	}
	return out, nil
}

// verdict drops the differences the VM's writes since the point explain,
// and marks the VM for a resync of the rest.
func (e *Engine) verdict(it *vault.Item, rep *VerifyReport, w *writtenSet, sampled bool) error {
	var bad []string
	resync := false
	for k := range rep.Disks {
		vd := &rep.Disks[k]
		d := &it.Disks[k]
		var keep []target.Extent
		for _, x := range vd.Differ {
			for off := x.Off; off < x.Off+x.Len; off += blockSize {
				if w.marked(d.Name, off/blockSize) {
					vd.Skipped += blockSize
					vd.Compared -= blockSize
				} else {
					keep = addExtent(keep, target.Extent{Off: off, Len: blockSize})
				}
			}
		}
		vd.Differ = append([]target.Extent{}, keep...)
		if len(vd.Differ) > 0 || len(vd.MapDiffer) > 0 {
			bad = append(bad, fmt.Sprintf("disk %s: %d ranges differ from the source, %d from the checksum map", d.Name, len(vd.Differ), len(vd.MapDiffer)))
		}
		if len(vd.MapDiffer) > 0 && sampled {
			d.MapDigest, d.MapPoint = "", "" // a full verify stored a fresh one
		}
		if len(vd.Differ) == 0 {
			continue
		}
		resync = true
		ranges := [][2]int64{}
		if sampled {
			ranges = append(ranges, [2]int64{0, d.Size})
		}
		for _, x := range vd.Differ {
			ranges = append(ranges, [2]int64{x.Off, min(x.Off+x.Len, d.Size)})
		}
		for _, g := range w.ranges(d.Name) {
			ranges = append(ranges, g)
		}
		if err := tracker.MarkResyncSet(d.Path, d.Size, ranges); err != nil {
			return err
		}
	}
	why := fmt.Errorf("verify of point %s: %s", rep.Point, strings.Join(bad, "; "))
	if !resync {
		if err := e.saveItem(it); err != nil || len(bad) == 0 {
			return err
		}
		return fmt.Errorf("VM %s: %v; the map was rebuilt from the replica: %w", it.VM, why, ErrMismatch)
	}
	if err := e.markResync(it, why); !errors.Is(err, ErrResync) {
		return err
	}
	return fmt.Errorf("VM %s: %v; run `asr resync %s`: %w", it.VM, why, it.VM, ErrMismatch)
}

// pickBlocks is every block, or a random pct% of them (at least one),
// ascending.
func pickBlocks(n int, pct float64) []int {
	if pct == 0 || pct >= 100 {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	k := max(1, int(float64(n)*pct/100))
	out := rand.Perm(n)[:k]
	slices.Sort(out)
	return out
}

// readPoint fills buf with the runs' blocks of a snapshot ("" for the
// disk itself).
func readPoint(ctx context.Context, t target.Target, disk, point string, runs [][2]int, buf []byte) error {
	pos := 0
	for _, r := range runs {
		off, n := int64(r[0])*blockSize, r[1]*blockSize
		for done := 0; done < n; {
			m := min(n-done, target.MaxWrite)
			if err := t.ReadAt(ctx, disk, point, buf[pos+done:pos+done+m], off+int64(done)); err != nil {
				return fmt.Errorf("read point %s of %s at %d: %w", point, disk, off+int64(done), err)
			}
			done += m
		}
		pos += n
	}
	return nil
}

func addExtent(xs []target.Extent, x target.Extent) []target.Extent {
	if k := len(xs) - 1; k >= 0 && xs[k].Off+xs[k].Len == x.Off {
		xs[k].Len += x.Len
		return xs
	}
	return append(xs, x)
}

// writtenSet is what the VM wrote since its newest point: the logs not yet
// shipped and, with a tracker running, its map of the active log.
type writtenSet struct {
	sock  string
	logs  map[string]map[int64]bool
	track map[string][]uint64
}

// writtenSince collects the shipped-later writes. With no tracker running
// it holds the tracker lock until unlock, so none starts meanwhile.
func (e *Engine) writtenSince(ctx context.Context, it *vault.Item) (*writtenSet, func(), error) {
	w := &writtenSet{logs: map[string]map[int64]bool{}}
	unlock := func() {}
	lock, err := e.lockTracker(it.VM)
	if errors.Is(err, vault.ErrLocked) {
		_, w.sock = tracker.Paths(e.TrackDir(), it.VM)
	} else if err != nil {
		return nil, nil, err
	} else {
		unlock = func() { lock.Unlock() }
	}
	for _, d := range it.Disks {
		w.logs[d.Name] = map[int64]bool{}
		files, _ := tracker.Logs(d.Path)
		for _, f := range files {
			if f.Seq <= d.AppliedSeq {
				continue
			}
			l, err := hrl.Open(f.Path)
			if err != nil {
				continue // the active log: the tracker's map covers it
			}
			for _, x := range l.Entries {
				for b := x.Off / blockSize; b <= (x.Off+x.Len-1)/blockSize; b++ {
					w.logs[d.Name][b] = true
				}
			}
		}
	}
	return w, unlock, nil
}

func (w *writtenSet) refresh(ctx context.Context) (err error) {
	if w.sock != "" {
		w.track, err = tracker.RequestWritten(ctx, w.sock)
	}
	return err
}

func (w *writtenSet) marked(disk string, b int64) bool {
	if w.logs[disk][b] {
		return true
	}
	bits := w.track[disk]
	return int(b/64) < len(bits) && bits[b/64]&(1<<(uint(b)%64)) != 0
}

// ranges lists the written blocks of a disk as byte ranges.
func (w *writtenSet) ranges(disk string) [][2]int64 {
	var out [][2]int64
	for b := range w.logs[disk] {
		out = append(out, [2]int64{b * blockSize, (b + 1) * blockSize})
	}
	for i, x := range w.track[disk] {
		for j := 0; j < 64; j++ {
			if x&(1<<j) != 0 {
				b := int64(i*64 + j)
				out = append(out, [2]int64{b * blockSize, (b + 1) * blockSize})
			}
		}
	}
	return out
}
