package hrl

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error about a log's contents is an *Error wrapping
// one of these, so callers test with errors.Is and read the file, field and
// byte offset from the message. Any of the first four means: do not apply
// the log; mark the disk for resync.
var (
	// ErrNotClosed: EOLLocation is 0, so the writer never closed the log
	// (tracker or host crash). Its tail cannot be trusted; Salvage can still
	// recover the prefix the last Flush made durable.
	ErrNotClosed = errors.New("log not closed properly")
	// ErrCorrupt: a cookie, version, checksum, size or bound check failed.
	ErrCorrupt = errors.New("log corrupt")
	// ErrChainBroken: a log's PreviousUniqueId is not the UniqueId of the
	// log before it: a log of the sequence is missing or foreign.
	ErrChainBroken = errors.New("log chain broken")
	// ErrTruncated: the file ends before a structure the log declares.
	ErrTruncated = errors.New("log truncated")
	// ErrClosed: Write or Flush on a Writer after Close.
	ErrClosed = errors.New("log writer closed")
	// ErrInvalid: a bad Options value or Write argument (caller bug).
	ErrInvalid = errors.New("invalid argument")
)

// hints say what to do next, per sentinel.
var hints = map[error]string{
	ErrNotClosed:   "the tracker stopped without closing it; do not apply it, resync the disk",
	ErrCorrupt:     "do not apply it; resync the disk",
	ErrChainBroken: "a log is missing from the sequence; do not apply the rest, resync the disk",
	ErrTruncated:   "the file was cut short (interrupted copy?); ship it again or resync the disk",
}

// Error says which file, field and byte offset failed and why. Offset is
// the field's absolute byte offset in the file, or -1 when the failure is
// not about one place (an I/O error, a chain link between files).
type Error struct {
	Path   string
	Field  string
	Offset int64
	Detail string // the facts: "want 0x..., have 0x..."
	Err    error  // one of the sentinels, or an I/O error
}

func (e *Error) Error() string {
	msg := "hrl " + e.Path + ": " + e.Field
	if e.Offset >= 0 {
		msg += fmt.Sprintf(" at byte %d", e.Offset)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	msg += ": " + e.Err.Error()
	if h, ok := hints[e.Err]; ok {
		msg += " (" + h + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

func errAt(path, field string, off int64, sentinel error, format string, args ...any) *Error {
	return &Error{Path: path, Field: field, Offset: off, Detail: fmt.Sprintf(format, args...), Err: sentinel}
}
