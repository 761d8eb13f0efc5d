package hrl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// Info is what `asr hrl inspect` prints. For a log that was not closed,
// Entries and DataBytes describe the prefix Salvage validated and
// TailBytes the file bytes past it.
type Info struct {
	Entries          int       `json:"entries"`
	DataBytes        int64     `json:"data_bytes"`
	Closed           bool      `json:"closed"`
	Valid            bool      `json:"valid"`
	UniqueID         uuid.UUID `json:"unique_id"`
	PreviousUniqueID uuid.UUID `json:"previous_unique_id"`
	Created          time.Time `json:"created"`
	LastModified     time.Time `json:"last_modified"`
	MetadataSize     uint32    `json:"metadata_size"`
	EOLLocation      uint64    `json:"eol_location"`
	CurrentSize      uint64    `json:"current_size"`
	Version          string    `json:"version"`
	Creator          string    `json:"creator"`
	DataWriteGUID    uuid.UUID `json:"data_write_guid"`
	TailBytes        int64     `json:"tail_bytes,omitempty"`
	// InUse: the log is open because a running tracker is writing it (it
	// holds the file's lock), not because a crash left it so.
	InUse bool   `json:"in_use,omitempty"`
	Error string `json:"error,omitempty"`
}

// Inspect reads the header fields as they are (even from a damaged header)
// and validates the log as Open does. On a bad file it returns what it
// could read, with Valid false and the error both returned and in Error.
func Inspect(path string) (Info, error) {
	var info Info
	fail := func(err error) (Info, error) {
		info.Error = err.Error()
		return info, err
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(fmt.Errorf("hrl inspect: %w", err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("hrl inspect: %w", err))
	}
	info.fillHeader(f, fi.Size())
	l, _, err := readLog(f, fi.Size(), path, false)
	if err == nil {
		info.Valid = true
		info.Entries, info.DataBytes = len(l.Entries), l.DataBytes
		return info, nil
	}
	if errors.Is(err, ErrNotClosed) {
		if s, tail, serr := readLog(f, fi.Size(), path, true); serr == nil {
			info.Entries, info.DataBytes, info.TailBytes = len(s.Entries), s.DataBytes, tail
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil {
			info.InUse = true // open and being written: nothing is wrong
			return info, nil
		}
	}
	return fail(err)
}

// fillHeader copies the raw header fields into info; validation is
// readLog's job, so a damaged header still shows what it holds.
func (info *Info) fillHeader(r io.ReaderAt, size int64) {
	if size < HeaderSize {
		return
	}
	b := make([]byte, HeaderSize)
	if readAt(r, b, 0) != nil {
		return
	}
	h := parseHeader(b)
	info.Closed = h.EOL != 0
	info.UniqueID, info.PreviousUniqueID, info.DataWriteGUID = h.ID, h.PrevID, h.DataWriteGUID
	info.Created, info.LastModified = unstamp(h.Created), unstamp(h.LastModified)
	info.MetadataSize, info.EOLLocation, info.CurrentSize = h.MetadataSize, h.EOL, h.CurrentSize
	info.Version = fmt.Sprintf("%d.%d", h.Version>>16, h.Version&0xFFFF)
	info.Creator = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7E {
			return -1
		}
		return r
	}, string(h.Creator[:]))
}
