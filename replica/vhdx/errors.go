package vhdx

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Sentinel errors. Every error Read and Parse return about a file's contents
// is a *FormatError wrapping one of the first three, so callers test with
// errors.Is and read the file, structure and offset from the message.
// CheckReplayed's error wraps ErrLogNotEmpty.
var (
	// ErrNotVHDX: the file does not start with the "vhdxfile" signature (or
	// is not a regular file). It is another format, not a damaged VHDX.
	ErrNotVHDX = errors.New("not a VHDX file")
	// ErrCorrupt: the file has the VHDX signature but ends before its
	// header section, has no valid header, two valid headers that disagree
	// on one sequence number, no valid region table, or bad or missing
	// metadata (table, Virtual Disk Size, Logical Sector Size, File
	// Parameters), or a structure lies outside the file. From Extents and
	// ScanExtents also: a BAT region too small for the disk, or a BAT entry
	// with an undefined state or whose block lies outside the file or over
	// the header section, log, BAT or metadata.
	ErrCorrupt = errors.New("VHDX file corrupt")
	// ErrUnsupported: a well-formed VHDX from a newer revision of the
	// format: header Version other than 1, LogVersion other than 0, or a
	// region or metadata item marked required that this package does not
	// know. The spec says such a file must not be loaded. From Extents and
	// ScanExtents also: a differencing disk (File Parameters HasParent).
	ErrUnsupported = errors.New("unsupported VHDX version or feature")
	// ErrLogNotEmpty: the log holds valid entries for the current header's
	// LogGuid, so metadata updates may be waiting in it and the file must
	// not be read as it stands. Returned by CheckReplayed, never by Read.
	ErrLogNotEmpty = errors.New("VHDX log not empty")
)

// hint tells the operator what to do next about a file, per sentinel.
func hint(sentinel error, path string) string {
	q := shellQuote(path)
	switch sentinel {
	case ErrNotVHDX:
		return "give the path of a .vhdx disk; `qemu-img info " + q + "` shows which format the file is"
	case ErrCorrupt:
		return "the VHDX metadata is damaged or the file was cut short (interrupted copy?); check it with `qemu-img check -f vhdx " +
			q + "` or Test-VHD on Hyper-V, and restore the disk from a replica or a backup if it does not open"
	case ErrUnsupported:
		return "the file comes from a newer VHDX revision than asr reads; convert it on the host that made it (Convert-VHD) or upgrade asr"
	}
	return ""
}

// FormatError says which file and structure failed, where, and why. Offset
// is the byte offset of the structure in the file, or -1 when the error is
// about the whole file (its type, its size, both headers).
type FormatError struct {
	Path   string
	Field  string // the structure or field: "header 1 checksum", "region table"
	Offset int64
	Detail string // the facts: "stored 0x..., computed 0x..."
	Err    error  // ErrNotVHDX, ErrCorrupt or ErrUnsupported

	hint string // what to do, when the sentinel's usual hint does not fit
}

func (e *FormatError) Error() string {
	msg := fmt.Sprintf("vhdx %s: %s", e.Path, e.Field)
	if e.Offset >= 0 {
		msg += fmt.Sprintf(" at offset %d", e.Offset)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	msg += ": " + e.Err.Error()
	h := e.hint
	if h == "" {
		h = hint(e.Err, e.Path)
	}
	if h != "" {
		msg += " (" + h + ")"
	}
	return msg
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(path, field string, off int64, sentinel error, format string, args ...any) *FormatError {
	return &FormatError{Path: path, Field: field, Offset: off, Detail: fmt.Sprintf(format, args...), Err: sentinel}
}

// CheckReplayed returns nil when info's log is empty (Info.LogEmpty), else
// an error wrapping ErrLogNotEmpty that tells the operator how to replay
// the log. Read does not refuse such files itself: a caller that only
// reports (inspect, status) shows them; a caller about to trust the header
// or the data (the tracker) calls CheckReplayed first.
func CheckReplayed(info Info) error {
	if info.LogEmpty() {
		return nil
	}
	return &logError{path: info.Path, guid: info.LogGUID}
}

type logError struct {
	path string
	guid uuid.UUID
}

func (e *logError) Error() string {
	return fmt.Sprintf("VHDX %s has a non-empty log (LogGuid %s): it was not closed cleanly by its owner, "+
		"or is open for writing now, and metadata updates wait in the log; if a VM uses it, shut the VM "+
		"down first; then run `qemu-img check -r all %s` (qemu replays the log when it opens the file "+
		"read-write) or attach it read-write once on a Hyper-V host, and retry",
		e.path, e.guid, shellQuote(e.path))
}

func (e *logError) Unwrap() error { return ErrLogNotEmpty }

// shellQuote returns s ready to paste into a POSIX shell: unchanged when it
// holds only safe characters, else single-quoted.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
