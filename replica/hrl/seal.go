package hrl

import (
	"github.com/google/uuid"

	"fmt"
	"os"
	"time"
)

// Seal closes a log that was left open by a crash: it keeps the durable
// prefix Salvage validates, cuts the unknown tail off the file and sets
// EOLLocation to the prefix's end, so the file is a proper closed log that
// Open accepts and the chain can go on from. It returns the sealed log and
// the number of tail bytes cut. Writes that were only in the tail are
// lost from the log: the caller must log the regions they may cover again
// (asr's activity log names them). On a closed log it only validates.
// Seal is idempotent: a crash during it leaves either the open log or the
// sealed one, and running it again finishes the job.
func Seal(path string, now func() time.Time) (*Log, int64, error) {
	l, tail, err := Salvage(path)
	if err != nil || l.Closed {
		return l, tail, err
	}
	if now == nil {
		now = time.Now
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("hrl seal: %w", err)
	}
	defer f.Close()
	b := make([]byte, HeaderSize)
	if err := readAt(f, b, 0); err != nil {
		return nil, 0, readErr(path, "header", 0, err)
	}
	h := parseHeader(b)
	// The tail goes first: a header naming EOLLocation must never sit in
	// front of bytes a reader would take for part of the log.
	if err := f.Truncate(l.End); err != nil {
		return nil, 0, &Error{Path: path, Field: "truncate", Offset: l.End, Err: err}
	}
	if err := f.Sync(); err != nil {
		return nil, 0, &Error{Path: path, Field: "fsync", Offset: -1, Err: err}
	}
	h.CurrentSize, h.EOL, h.LastModified = uint64(l.End), uint64(l.End), stamp(now())
	h.marshal(b)
	if _, err := f.WriteAt(b, 0); err != nil {
		return nil, 0, &Error{Path: path, Field: "header", Offset: 0, Err: err}
	}
	if err := f.Sync(); err != nil {
		return nil, 0, &Error{Path: path, Field: "fsync", Offset: -1, Err: err}
	}
	l.Closed = true
	return l, tail, nil
}

// Peek reads only a log's header and returns its UniqueId and whether the
// log was closed properly (EOLLocation not 0). The header must pass its
// checksum; the rest of the file is not read.
func Peek(path string) (id uuid.UUID, closed bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("hrl peek: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("hrl peek: %w", err)
	}
	h, err := readHeader(f, fi.Size(), path)
	if err != nil {
		return uuid.Nil, false, err
	}
	return h.ID, h.EOL != 0, nil
}
