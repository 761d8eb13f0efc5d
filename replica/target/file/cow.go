package file

import (
	"context"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/asr-project/asr/replica/target"
)

// crashHook, when a test sets it, runs at the named points of a preserving
// write and after each batch of a merge; an error stops the work there as
// a crash would.
var crashHook func(stage string) error

// mergeBatch is how many granules a merge copies between syncs (16 MiB).
var mergeBatch = 256

// hook runs crashHook at stage. It also kills this process with SIGKILL
// when ASR_CRASHPOINT names the stage, as replica's crashpoints do (this
// package can't import replica, whose tests import it), so the process
// crash tests reach "pre-data", "pre-index" and "merge-batch" too.
func hook(stage string) error {
	if os.Getenv("ASR_CRASHPOINT") == stage {
		unix.Kill(os.Getpid(), unix.SIGKILL)
	}
	if crashHook != nil {
		return crashHook(stage)
	}
	return nil
}

func (h *held) snapFile(s snapInfo, name string) string {
	return filepath.Join(h.t.snapDir(h.enc), s.dir, name)
}

// index returns the snapshot's loaded index, from the cache when the file
// has not changed size since. Index files only grow while their snapshot
// directory exists (whose name is never reused), except when a torn tail is
// cut, so an unchanged size means unchanged content.
func (h *held) index(s snapInfo) (*preIndex, error) {
	path := h.snapFile(s, "index")
	fi, statErr := os.Stat(path)
	h.st.idxMu.Lock()
	ix := h.st.idx[s.dir]
	h.st.idxMu.Unlock()
	if statErr == nil && ix != nil && ix.size == fi.Size() && (!h.excl || ix.size == ix.valid) {
		return ix, nil
	}
	ix, err := loadIndex(path, h.excl)
	if err != nil {
		return nil, err
	}
	h.st.idxMu.Lock()
	h.st.idx[s.dir] = ix
	h.st.idxMu.Unlock()
	return ix, nil
}

// preserve saves, into the newest snapshot, the current content of every
// granule the writes touch that the snapshot does not hold yet, and makes
// it durable (data, then index) before returning. Only then may the caller
// overwrite the disk. Granules past the snapshot's size (the disk grew
// after it was taken) are not the snapshot's and are not saved. Exclusive
// lock held.
func (h *held) preserve(newest snapInfo, ws []target.Write) error {
	ix, err := h.index(newest)
	if err != nil {
		return err
	}
	var todo []uint64
	for _, w := range ws {
		if len(w.P) == 0 {
			continue
		}
		last := uint64((w.Off + int64(len(w.P)) - 1) / granule)
		for g := uint64(w.Off / granule); g <= last && g < ix.n; g++ {
			if !ix.has(g) {
				todo = append(todo, g)
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	slices.Sort(todo)
	todo = slices.Compact(todo)
	live, err := os.Open(h.t.vhdPath(h.enc))
	if err != nil {
		return ioErr("open", h.t.vhdPath(h.enc), err)
	}
	defer live.Close()
	prePath := h.snapFile(newest, "pre")
	pre, err := os.OpenFile(prePath, os.O_RDWR, 0)
	if err != nil {
		return ioErr("open", prePath, err)
	}
	defer pre.Close()
	runs := toRuns(todo)
	if err := h.t.saveRuns(live, pre, runs); err != nil {
		return err
	}
	if err := hook("pre-data"); err != nil {
		return err
	}
	if err := pre.Sync(); err != nil { // fsync: punched holes and shared extents are metadata
		return ioErr("sync", prePath, err)
	}
	if err := ix.appendRuns(runs); err != nil {
		return err
	}
	return hook("pre-index")
}

// saveRuns puts the live disk's granules into the pre file at the same
// offsets: as shared blocks where the file system has reflink (nothing is
// read or written; the disk's next write gets new blocks), else copied, an
// all-zero granule becoming a hole. The first refused clone turns cloning
// off for the target.
func (t *Target) saveRuns(live, pre *os.File, runs []run) error {
	var buf []byte
	for _, r := range runs {
		off, n := int64(r.first)*granule, int64(r.count)*granule
		if !t.noClone.Load() {
			err := unix.IoctlFileCloneRange(int(pre.Fd()), &unix.FileCloneRange{Src_fd: int64(live.Fd()), Src_offset: uint64(off), Src_length: uint64(n), Dest_offset: uint64(off)})
			if err == nil {
				continue
			}
			t.noClone.Store(true)
		}
		if buf == nil {
			buf = make([]byte, granule)
		}
		for pos := off; pos < off+n; pos += granule {
			// A never-written granule's pre-image is a hole, which a new
			// pre file already has: no read, no write. (Most granules of a
			// young replica; reading and punching them was a third of a
			// cycle.)
			if isHole(live, pos, granule) {
				if isHole(pre, pos, granule) {
					continue
				}
				clear(buf)
				if err := writeOrPunch(pre, buf, pos); err != nil {
					return err
				}
				continue
			}
			if _, err := live.ReadAt(buf, pos); err != nil {
				return ioErr("read", live.Name(), err)
			}
			if err := writeOrPunch(pre, buf, pos); err != nil {
				return err
			}
		}
	}
	return nil
}

// readSnap reads snapshot snaps[i], p inside its size: each granule from
// the oldest snapshot at or after i that holds its pre-image, else from the
// disk. Later snapshots are at least as large (disks only grow).
func (h *held) readSnap(snaps []snapInfo, i int, p []byte, off int64) error {
	chain := snaps[i:]
	idxs := make([]*preIndex, len(chain))
	for j, s := range chain {
		ix, err := h.index(s)
		if err != nil {
			return err
		}
		idxs[j] = ix
	}
	files := make([]*os.File, len(chain)+1) // the last is the disk
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	source := func(g uint64) int {
		for j, ix := range idxs {
			if ix.has(g) {
				return j
			}
		}
		return len(chain)
	}
	end := off + int64(len(p))
	for pos := off; pos < end; {
		src := source(uint64(pos / granule))
		stop := min((pos/granule+1)*granule, end)
		for stop < end && source(uint64(stop/granule)) == src {
			stop = min(stop+granule, end)
		}
		if files[src] == nil {
			path := h.t.vhdPath(h.enc)
			if src < len(chain) {
				path = h.snapFile(chain[src], "pre")
			}
			f, err := os.Open(path)
			if err != nil {
				return ioErr("open", path, err)
			}
			files[src] = f
		}
		if _, err := files[src].ReadAt(p[pos-off:stop-off], pos); err != nil {
			return ioErr(fmt.Sprintf("read %d bytes at offset %d of", stop-pos, pos), files[src].Name(), err)
		}
		pos = stop
	}
	return nil
}

// snapRanges lists the data extents below size of snaps[i] (of the disk
// when snaps is empty), size being the snapshot's (the disk's): for each
// granule, the extents of the file readSnap takes it from. Preserved zero
// granules are holes, so this is exact to file-system blocks.
func (h *held) snapRanges(snaps []snapInfo, i int, size int64) ([]target.Extent, error) {
	paths, source, err := h.sources(snaps, i)
	if err != nil {
		return nil, err
	}
	chain := snaps[i:]
	var lists [][]target.Extent
	for j, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, ioErr("open", p, err)
		}
		l, err := dataRanges(f, size)
		f.Close()
		if err != nil {
			return nil, err
		}
		if len(chain) > 0 {
			l = clipToSource(l, j, source)
		}
		lists = append(lists, l)
	}
	return union(lists...), nil
}

// sources returns the files snapshot snaps[i] is read from (each later
// snapshot's pre file, then the disk) and, for a granule, the index of the
// one that holds it (the disk's when snaps is empty).
func (h *held) sources(snaps []snapInfo, i int) ([]string, func(uint64) int, error) {
	chain := snaps[i:]
	idxs := make([]*preIndex, len(chain))
	paths := make([]string, len(chain)+1)
	for j, s := range chain {
		ix, err := h.index(s)
		if err != nil {
			return nil, nil, err
		}
		idxs[j], paths[j] = ix, h.snapFile(s, "pre")
	}
	paths[len(chain)] = h.t.vhdPath(h.enc)
	return paths, func(g uint64) int {
		for j, ix := range idxs {
			if ix.has(g) {
				return j
			}
		}
		return len(chain)
	}, nil
}

// clipToSource keeps the parts of extents that lie in granules read from
// file j.
func clipToSource(l []target.Extent, j int, source func(uint64) int) []target.Extent {
	var out []target.Extent
	for _, e := range l {
		for pos, end := e.Off, e.Off+e.Len; pos < end; {
			stop := min((pos/granule+1)*granule, end)
			if source(uint64(pos/granule)) == j {
				if n := len(out); n > 0 && out[n-1].Off+out[n-1].Len == pos {
					out[n-1].Len += stop - pos
				} else {
					out = append(out, target.Extent{Off: pos, Len: stop - pos})
				}
			}
			pos = stop
		}
	}
	return out
}

// merge gives snapshot into the pre-images of from that it lacks, before
// from is deleted: a granule into lacks was unchanged between the two
// snapshots, so from's pre-image is into's content too. Granules past
// into's size (the disk grew between the two) are not into's. Batches are
// synced before they are indexed; an interrupted merge is finished by the
// next DeleteSnapshot. Exclusive lock held.
func (h *held) merge(ctx context.Context, from, into snapInfo) error {
	src, err := h.index(from)
	if err != nil {
		return err
	}
	dst, err := h.index(into)
	if err != nil {
		return err
	}
	in, err := os.Open(h.snapFile(from, "pre"))
	if err != nil {
		return ioErr("open", h.snapFile(from, "pre"), err)
	}
	defer in.Close()
	out, err := os.OpenFile(h.snapFile(into, "pre"), os.O_RDWR, 0)
	if err != nil {
		return ioErr("open", h.snapFile(into, "pre"), err)
	}
	defer out.Close()
	buf := make([]byte, granule)
	part := make([]uint64, 0, mergeBatch)
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("file target: deleting a snapshot of %s: %w", decodeName(h.enc), err)
		}
		for _, g := range part {
			if _, err := in.ReadAt(buf, int64(g)*granule); err != nil {
				return ioErr("read", in.Name(), err)
			}
			if err := writeOrPunch(out, buf, int64(g)*granule); err != nil {
				return err
			}
		}
		if err := out.Sync(); err != nil {
			return ioErr("sync", out.Name(), err)
		}
		if err := dst.appendRuns(toRuns(part)); err != nil {
			return err
		}
		part = part[:0]
		return hook("merge-batch")
	}
	for w, word := range src.bits[:min(len(src.bits), len(dst.bits))] {
		for word &^= dst.bits[w]; word != 0; word &= word - 1 {
			g := uint64(w)*64 + uint64(bits.TrailingZeros64(word))
			if g >= dst.n {
				break
			}
			part = append(part, g)
			if len(part) == mergeBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if len(part) == 0 {
		return nil
	}
	return flush()
}
