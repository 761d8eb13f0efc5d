package tracker

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/asr-project/asr/replica/vhdx"
	"github.com/google/uuid"
)

// A disk changed while nobody tracked it (the VM run straight on the file,
// a manual repair) would leave the replica silently behind. So asr keeps
// the disk's modification time from the last moment every write was
// accounted for in <disk>.asr-stamp (written before the initial copy reads
// the disk and when a tracker closes cleanly), and for a VHDX also its
// DataWriteGuid, which every writer (Hyper-V, qemu) changes before its
// first write: the field Hyper-V itself uses, so a change that kept the
// file's time is caught too. A disk whose time or DataWriteGuid differs
// from its stamp changed untracked.
// A tracker that finds such a change when it starts leaves
// <disk>.asr-untracked behind, since its own stamp would hide it.

// ErrUntracked: the disk changed while no tracker logged its writes.
var ErrUntracked = errors.New("disk changed while not tracked")

func stampPath(disk string) string  { return disk + ".asr-stamp" }
func markerPath(disk string) string { return disk + ".asr-untracked" }

// Stamp records the disk's current modification time as accounted for.
func Stamp(disk string) error {
	fi, err := os.Stat(disk)
	if err != nil {
		return err
	}
	stamp := strconv.FormatInt(fi.ModTime().UnixNano(), 10)
	if g := dataWriteGUID(disk); g != uuid.Nil {
		stamp += " " + g.String()
	}
	tmp := stampPath(disk) + ".tmp"
	if err := os.WriteFile(tmp, []byte(stamp), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, stampPath(disk))
}

// CheckUntracked returns ErrUntracked if a tracker found the disk changed
// when it started or, unless a tracker is running (its own writes move the
// time), if the disk changed since its stamp. A disk with no stamp passes:
// there is nothing to compare with.
func CheckUntracked(disk string, running bool) error {
	if _, err := os.Stat(markerPath(disk)); err == nil {
		return fmt.Errorf("disk %s: a tracker found it changed before it started: %w", disk, ErrUntracked)
	}
	if running {
		return nil
	}
	data, err := os.ReadFile(stampPath(disk))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		fields = []string{""}
	}
	want, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return fmt.Errorf("disk %s: unreadable stamp %s: %w", disk, stampPath(disk), ErrUntracked)
	}
	fi, err := os.Stat(disk)
	if err != nil {
		return err
	}
	if got := fi.ModTime().UnixNano(); got != want {
		return fmt.Errorf("disk %s: modified at %s, after the last tracked write: %w", disk, fi.ModTime().UTC().Format("2006-01-02T15:04:05.000Z"), ErrUntracked)
	}
	if len(fields) > 1 {
		if g := dataWriteGUID(disk); g.String() != fields[1] {
			return fmt.Errorf("disk %s: its VHDX DataWriteGuid is %s, not %s as at the last tracked write: something else wrote it: %w", disk, g, fields[1], ErrUntracked)
		}
	}
	return nil
}

// dataWriteGUID is a VHDX's DataWriteGuid, or uuid.Nil for any other disk
// (or a VHDX whose headers can't be read: the modification time still
// counts).
func dataWriteGUID(disk string) uuid.UUID {
	info, err := vhdx.Read(disk)
	if err != nil {
		return uuid.Nil
	}
	return info.DataWriteGUID
}

// StateFiles are the files beside a disk, other than its logs, in which
// asr keeps tracking state: stamp, untracked marker, activity log and
// dirty map and resync set.
func StateFiles(disk string) []string {
	return []string{stampPath(disk), markerPath(disk), alPath(disk), dirtyPath(disk), resyncPath(disk)}
}
