package file

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/asr-project/asr/replica/target"
)

// snapInfo is one snapshot directory: "<seq>-<id>-<name>", seq giving the
// order and id (random) making the directory name unique for ever, so a
// cached index can never belong to an earlier snapshot of the same name.
type snapInfo struct {
	seq uint64
	dir string
	enc string // the snapshot name, file-name form
}

func (t *Target) listSnaps(enc string) ([]snapInfo, error) {
	dir := t.snapDir(enc)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, ioErr("list snapshots in", dir, err)
	}
	var out []snapInfo
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // work directories
		}
		parts := strings.SplitN(name, "-", 3)
		seq, err := strconv.ParseUint(parts[0], 10, 64)
		if len(parts) != 3 || err != nil {
			return nil, fmt.Errorf("file target: %s: unexpected entry %q (move it out of the snapshot directory): %w", dir, name, ErrCorrupt)
		}
		out = append(out, snapInfo{seq: seq, dir: name, enc: parts[2]})
	}
	slices.SortFunc(out, func(a, b snapInfo) int { return cmp.Compare(a.seq, b.seq) })
	return out, nil
}

func findSnap(snaps []snapInfo, enc string) int {
	return slices.IndexFunc(snaps, func(s snapInfo) bool { return s.enc == enc })
}

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%08x", binary.BigEndian.Uint32(b[:]))
}

// Snapshot costs two small files: nothing is copied until a later write.
func (t *Target) Snapshot(ctx context.Context, disk, snapshot string) error {
	enc, senc, err := names(disk, snapshot)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := t.lock(ctx, disk, enc, true, false)
	if err != nil {
		return err
	}
	defer h.unlock()
	size, err := t.statDisk(disk, enc)
	if err != nil {
		return err
	}
	snaps, err := t.listSnaps(enc)
	if err != nil {
		return err
	}
	h.prune(snaps)
	if findSnap(snaps, senc) >= 0 {
		return nil
	}
	dir := t.snapDir(enc)
	if err := os.Mkdir(dir, 0o755); err == nil {
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return ioErr("create", dir, err)
	}
	t.sweepSnaps(dir)
	tmp := filepath.Join(dir, tmpPrefix+randHex())
	if err := makeSnapDir(tmp, size); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	seq := uint64(1)
	if n := len(snaps); n > 0 {
		seq = snaps[n-1].seq + 1
	}
	final := filepath.Join(dir, fmt.Sprintf("%010d-%s-%s", seq, randHex(), senc))
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return ioErr("rename into place", final, err)
	}
	return syncDir(dir)
}

// makeSnapDir makes an empty index and an all-hole pre-image file, durably.
func makeSnapDir(dir string, size int64) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return ioErr("create", dir, err)
	}
	for _, name := range []string{"index", "pre"} {
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return ioErr("create", path, err)
		}
		if name == "index" {
			_, err = f.Write(indexHeaderBytes(size))
		} else {
			err = f.Truncate(size)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return ioErr("write", path, err)
		}
	}
	return syncDir(dir)
}

// sweepSnaps removes work directories of interrupted snapshot creations
// and deletions. Exclusive lock held.
func (t *Target) sweepSnaps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasPrefix(e.Name(), delPrefix) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// Snapshots lists the disk's snapshots in the order they were taken.
func (t *Target) Snapshots(ctx context.Context, disk string) ([]string, error) {
	enc, err := validName("disk", disk)
	if err != nil {
		return nil, err
	}
	h, err := t.lock(ctx, disk, enc, false, false)
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	if _, err := t.statDisk(disk, enc); err != nil {
		return nil, err
	}
	snaps, err := t.listSnaps(enc)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range snaps {
		out = append(out, decodeName(s.enc))
	}
	return out, nil
}

// DeleteSnapshot first hands the snapshot's pre-images to the next older
// snapshot, then renames its directory away (atomic) and removes it.
func (t *Target) DeleteSnapshot(ctx context.Context, disk, snapshot string) error {
	enc, senc, err := names(disk, snapshot)
	if err != nil {
		return err
	}
	h, err := t.lock(ctx, disk, enc, true, false)
	if errors.Is(err, target.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer h.unlock()
	if _, err := t.statDisk(disk, enc); errors.Is(err, target.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	snaps, err := t.listSnaps(enc)
	if err != nil {
		return err
	}
	h.prune(snaps)
	i := findSnap(snaps, senc)
	if i < 0 {
		return nil
	}
	if i > 0 {
		if err := h.merge(ctx, snaps[i], snaps[i-1]); err != nil {
			return err
		}
	}
	dir := t.snapDir(enc)
	del := filepath.Join(dir, delPrefix+randHex())
	if err := os.Rename(filepath.Join(dir, snaps[i].dir), del); err != nil {
		return ioErr("rename away", filepath.Join(dir, snaps[i].dir), err)
	}
	h.st.idxMu.Lock()
	delete(h.st.idx, snaps[i].dir)
	h.st.idxMu.Unlock()
	if err := syncDir(dir); err != nil {
		return err
	}
	_ = os.RemoveAll(del) // a leftover is swept by the next Snapshot
	return nil
}

// prune drops cached indexes of snapshots that no longer exist (another
// process deleted them). Exclusive lock held.
func (h *held) prune(snaps []snapInfo) {
	h.st.idxMu.Lock()
	defer h.st.idxMu.Unlock()
	for dir := range h.st.idx {
		if !slices.ContainsFunc(snaps, func(s snapInfo) bool { return s.dir == dir }) {
			delete(h.st.idx, dir)
		}
	}
}

// names validates a disk and a snapshot name.
func names(disk, snapshot string) (string, string, error) {
	enc, err := validName("disk", disk)
	if err != nil {
		return "", "", err
	}
	senc, err := validName("snapshot", snapshot)
	return enc, senc, err
}
