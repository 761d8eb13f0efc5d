package tracker

import (
	"github.com/asr-project/asr/replica/hrl"

	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// LogFile is one .hrl log of a disk.
type LogFile struct {
	Seq  uint64
	Path string
}

// LogPath is the path of a disk's log number seq.
func LogPath(disk string, seq uint64) string {
	return fmt.Sprintf("%s.%08d.hrl", disk, seq)
}

// Logs lists a disk's log files in sequence order.
func Logs(disk string) ([]LogFile, error) {
	matches, err := filepath.Glob(escapeGlob(disk) + ".*.hrl")
	if err != nil {
		return nil, err
	}
	var out []LogFile
	for _, m := range matches {
		mid := strings.TrimSuffix(strings.TrimPrefix(m, disk+"."), ".hrl")
		seq, err := strconv.ParseUint(mid, 10, 64)
		if err != nil || len(mid) < 8 {
			continue // not ours
		}
		out = append(out, LogFile{Seq: seq, Path: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// LogBytes is the total size of a disk's log files: what is waiting to ship.
func LogBytes(disk string) int64 {
	logs, _ := Logs(disk)
	var n int64
	for _, l := range logs {
		if fi, err := os.Stat(l.Path); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// PendingBytes estimates the write data in a disk's logs waiting to ship:
// each log's size less what an empty log already holds (its header and
// first metadata block), so a quiet VM shows 0.
func PendingBytes(disk string) int64 {
	logs, _ := Logs(disk)
	var n int64
	for _, l := range logs {
		if fi, err := os.Stat(l.Path); err == nil {
			n += max(0, fi.Size()-hrl.HeaderSize-hrl.DefaultMetadataSize)
		}
	}
	return n
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// shrinkStep is how much of a shipped log one truncate frees.
const shrinkStep = 64 << 20

// RemoveShipped deletes a disk's logs up to and including seq, each cut
// down from its end a step at a time before it is unlinked. Freeing a
// GiB-sized log in one unlink makes ext4 release all its extents and cached
// pages in one go, which stalled the tracker's writes to the next log
// (measured: 0.7 s); steps keep each pause short.
func RemoveShipped(disk string, seq uint64) {
	logs, _ := Logs(disk)
	for _, l := range logs {
		if l.Seq > seq {
			continue
		}
		if fi, err := os.Stat(l.Path); err == nil {
			for n := (fi.Size() - 1) / shrinkStep * shrinkStep; n > 0; n -= shrinkStep {
				if os.Truncate(l.Path, n) != nil {
					break
				}
			}
		}
		os.Remove(l.Path)
	}
}
