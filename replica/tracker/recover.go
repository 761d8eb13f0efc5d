package tracker

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/image"
)

// ErrUntrusted: a disk's logs can't be made into an exact chain (a damaged
// header, no activity log); only a resync brings the replica back.
var ErrUntrusted = errors.New("logs can't be trusted")

// untrackedSlack is how much later than the last write a tracker accounted
// for a crashed disk's modification time may be: the log and the disk are
// written at once, so their times differ by about one write.
const untrackedSlack = 2 * time.Second

// chainEnd is the newest log of a disk's chain.
type chainEnd struct {
	Seq uint64
	ID  uuid.UUID
}

// Recover finishes, for one disk, what a tracker killed or lost in a host
// crash left behind, so that its logs form an exact chain again: each log
// left open is sealed at its durable prefix, and a new sealed log holds the
// current content of every extent the activity log names, read from the
// quiescent disk. It returns the sequence number of the disk's newest log.
// The caller holds the VM's tracker lock, so no tracker serves the disk.
// With nothing to recover it only reads log headers.
func Recover(s DiskSpec) (uint64, error) {
	end, err := recoverDisk(s)
	return end.Seq, err
}

func recoverDisk(s DiskSpec) (chainEnd, error) {
	end := chainEnd{s.AppliedSeq, s.AppliedID}
	logs, err := Logs(s.Path)
	if err != nil {
		return end, err
	}
	if _, err := os.Stat(dirtyPath(s.Path)); err == nil {
		return recoverDegraded(s, logs)
	}
	var open []LogFile
	var accounted time.Time
	for i, l := range logs {
		if l.Seq <= s.AppliedSeq {
			continue // applied; the replicate cycle deletes it
		}
		id, closed, err := hrl.Peek(l.Path)
		if err != nil && i == len(logs)-1 && bornDead(l.Path) {
			os.Remove(l.Path)
			break
		}
		if err != nil {
			return end, fmt.Errorf("disk %s: %w: %w", s.Name, ErrUntrusted, err)
		}
		if !closed {
			open = append(open, l)
			accounted = later(accounted, l.Path)
		}
		end = chainEnd{l.Seq, id}
	}
	if len(open) == 0 {
		return end, nil
	}
	rec, err := readAL(s.Path)
	if err != nil {
		return end, fmt.Errorf("disk %s: a log was left open: %w: %w", s.Name, ErrUntrusted, err)
	}
	accounted = later(accounted, alPath(s.Path))
	if fi, err := os.Stat(s.Path); err != nil {
		return end, err
	} else if fi.ModTime().After(accounted.Add(untrackedSlack)) {
		// Written after the tracker died: the activity log can't cover it.
		if err := os.WriteFile(markerPath(s.Path), nil, 0o600); err != nil {
			return end, err
		}
	}
	for _, l := range open {
		if _, _, err := hrl.Seal(l.Path, nil); err != nil {
			return end, fmt.Errorf("disk %s: %w: %w", s.Name, ErrUntrusted, err)
		}
	}
	id, err := relog(s, LogPath(s.Path, end.Seq+1), end.ID, rec)
	if err != nil {
		return end, fmt.Errorf("disk %s: recover the activity log's extents: %w", s.Name, err)
	}
	end = chainEnd{end.Seq + 1, id}
	if _, err := os.Stat(markerPath(s.Path)); errors.Is(err, os.ErrNotExist) {
		return end, Stamp(s.Path)
	}
	return end, nil
}

// relog writes a sealed log at path, chained to prev, holding the current
// content of the record's extents. A crash while it runs leaves an open
// log that the next Recover seals and follows with the same extents.
func relog(s DiskSpec, path string, prev uuid.UUID, rec alRecord) (uuid.UUID, error) {
	vd, err := image.Open(s.Path, s.Format)
	if err != nil {
		return uuid.Nil, err
	}
	defer vd.Close()
	w, err := hrl.Create(path, hrl.Options{PreviousID: prev})
	if err != nil {
		return uuid.Nil, err
	}
	defer w.Close()
	buf := make([]byte, 1<<20)
	exts := slices.Sorted(slices.Values(rec.Extents))
	for _, e := range exts {
		for off, end := int64(e)*rec.ExtentSize, min(int64(e+1)*rec.ExtentSize, vd.Size()); off < end; {
			n := min(int64(len(buf)), end-off)
			if _, err := vd.ReadAt(buf[:n], off); err != nil {
				return uuid.Nil, err
			}
			if err := w.Write(off, buf[:n]); err != nil {
				return uuid.Nil, err
			}
			off += n
		}
	}
	if err := w.Close(); err != nil {
		return uuid.Nil, err
	}
	return w.ID(), nil
}

// recoverDegraded: logging had stopped. Logs from the map's FromSeq on are
// not part of the chain; the activity log's extents join the map, since a
// crash may have hidden writes there that the map had not yet persisted.
func recoverDegraded(s DiskSpec, logs []LogFile) (chainEnd, error) {
	end := chainEnd{s.AppliedSeq, s.AppliedID}
	d, err := ReadDirty(s.Path)
	if err != nil {
		return end, err
	}
	m, err := loadDirtyMap(s.Path, d.Size)
	if err != nil {
		return end, err
	}
	if rec, err := readAL(s.Path); err == nil {
		for _, e := range rec.Extents {
			m.mark(int64(e)*rec.ExtentSize, rec.ExtentSize)
		}
	}
	if err := m.persist(s.Path); err != nil {
		return end, err
	}
	removeLogsFrom(s.Path, d.FromSeq)
	for _, l := range logs {
		if l.Seq > s.AppliedSeq && l.Seq < d.FromSeq {
			id, _, err := hrl.Peek(l.Path)
			if err != nil {
				return end, fmt.Errorf("disk %s: %w: %w", s.Name, ErrUntrusted, err)
			}
			end = chainEnd{l.Seq, id}
		}
	}
	return end, nil
}

// bornDead says a log file is no bigger than what hrl.Create writes before
// it returns: a crash cut its creation short, before any write was logged.
func bornDead(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() <= hrl.HeaderSize+hrl.DefaultMetadataSize
}

// later returns the later of t and path's modification time.
func later(t time.Time, path string) time.Time {
	if fi, err := os.Stat(path); err == nil && fi.ModTime().After(t) {
		return fi.ModTime()
	}
	return t
}
