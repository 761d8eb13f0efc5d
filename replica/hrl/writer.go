package hrl

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// Options configure a new log.
type Options struct {
	PreviousID    uuid.UUID        // chain link; uuid.Nil for the first log of a disk
	MetadataSize  int              // bytes per metadata block; 0 means 4096; a multiple of 512 up to 1 MiB
	DataWriteGUID uuid.UUID        // the disk's Vhd2DataWriteGuid at tracking time
	Now           func() time.Time // clock for every time field; nil means time.Now
}

// Writer appends writes to a new log file. All methods are safe for
// concurrent use; writes are logged in the order their calls take the lock.
type Writer struct {
	flushMu    sync.Mutex // one Flush or Close at a time; taken before mu
	mu         sync.Mutex
	f          *os.File
	path       string
	now        func() time.Time
	hdr        header
	hbuf       []byte // HeaderSize scratch
	block      []byte // MetadataSize scratch
	perBlock   int
	end        int64 // where the next byte goes
	lastBlock  int64 // offset of the newest metadata block
	pending    []rawEntry
	dataBytes  int64
	dirty      bool  // a block was written since the header last was
	err        error // sticky: after a failed write the log cannot be closed
	closed     bool
	closeErr   error
	beforeSync func() // tests: runs before Flush's fsyncs
}

// Create makes a new log at path, which must not exist. It writes the file
// header (EOLLocation 0) and the first metadata block, which lists no
// entries (HRL.md's layout puts block #1 right after the header), then
// fsyncs the file and its directory.
func Create(path string, opt Options) (*Writer, error) {
	ms := opt.MetadataSize
	if ms == 0 {
		ms = DefaultMetadataSize
	}
	if ms%512 != 0 || ms < 512 || ms > maxMetadataSize {
		return nil, fmt.Errorf("hrl create %s: MetadataSize %d is not a multiple of 512 in [512, %d]: %w", path, ms, maxMetadataSize, ErrInvalid)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, fmt.Errorf("hrl create %s: new UniqueId: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("hrl create: %w", err)
	}
	// Held until Close, so Inspect can tell a log being written from one
	// a crash left open. Advisory: nothing else depends on it.
	syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	t := stamp(now())
	w := &Writer{
		f: f, path: path, now: now,
		hbuf: make([]byte, HeaderSize), block: make([]byte, ms),
		perBlock: (ms - blockHeaderSize) / entrySize,
		end:      HeaderSize + int64(ms), lastBlock: HeaderSize,
	}
	w.pending = make([]rawEntry, 0, w.perBlock)
	w.hdr = header{
		Cookie: cookie, Version: Version2, Created: t, CreatorVersion: creatorVer,
		OriginalSize: uint64(w.end), CurrentSize: uint64(w.end),
		MetadataSize: uint32(ms), ID: id, PrevID: opt.PreviousID,
		LastModified: t, DataWriteGUID: opt.DataWriteGUID,
	}
	copy(w.hdr.Creator[:], creatorName)
	marshalBlock(w.block, 0, nil)
	if err := w.writeAt(w.block, HeaderSize, "first metadata block"); err == nil {
		err = w.writeHeader()
	}
	if err == nil {
		err = w.sync()
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		f.Close()
		os.Remove(path) // ours: O_EXCL made it
		return nil, err
	}
	return w, nil
}

// ID is the log's UniqueId, the PreviousID of the next log in the chain.
func (w *Writer) ID() uuid.UUID { return w.hdr.ID }

// Path is the log file's path.
func (w *Writer) Path() string { return w.path }

// DataBytes is the number of data bytes appended so far.
func (w *Writer) DataBytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dataBytes
}

// Write logs that p was written at byte off of the disk. The data reaches
// the file now (not fsynced); its entry waits in memory until a block's
// worth is pending or Flush runs. Buffers over 1 GiB become several
// entries. An empty p is a no-op. After an I/O error every later call
// returns that error and the log stays "not closed".
func (w *Writer) Write(off int64, p []byte) error {
	if off < 0 || int64(len(p)) > math.MaxInt64-off {
		return fmt.Errorf("hrl write %s: range [%d, +%d) is not on a disk: %w", w.path, off, len(p), ErrInvalid)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	t := stamp(w.now())
	for len(p) > 0 {
		n := min(len(p), maxEntryLen)
		if err := w.writeAt(p[:n], w.end, "data"); err != nil {
			return err
		}
		w.pending = append(w.pending, rawEntry{Off: uint64(off), Len: uint32(n), Time: t, DataSum: ^byteSum(p[:n])})
		w.end += int64(n)
		w.dataBytes += int64(n)
		off += int64(n)
		p = p[n:]
		if len(w.pending) == w.perBlock {
			if err := w.writeBlock(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Flush writes a metadata block for the pending entries (however few),
// fsyncs, then rewrites the header (CurrentSize, LastModified,
// TotalMetadataEntries; EOLLocation stays 0) and fsyncs again. Blocks reach
// the disk before the header that counts them, so after a crash the header
// names a durable, checksummed prefix for Salvage. With nothing new since
// the last Flush it only fsyncs. Writes go on during the fsyncs (a guest
// waiting out a flush of its own data was the tracker's worst stall); the
// header names only what the first fsync covered.
func (w *Writer) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	err := w.usable()
	if err == nil && len(w.pending) > 0 {
		err = w.writeBlock()
	}
	hdr, dirty := w.hdr, w.dirty
	hdr.CurrentSize = uint64(w.end)
	hdr.LastModified = stamp(w.now())
	w.dirty = false
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if err := w.syncOutside(); err != nil || !dirty {
		return err
	}
	w.mu.Lock()
	hdr.marshal(w.hbuf)
	err = w.usable()
	if err == nil {
		err = w.writeAt(w.hbuf, 0, "header")
	}
	w.mu.Unlock()
	if err != nil {
		return err
	}
	return w.syncOutside()
}

// syncOutside fsyncs without mu (flushMu held, so Close waits for it).
func (w *Writer) syncOutside() error {
	if w.beforeSync != nil {
		w.beforeSync()
	}
	if err := w.f.Sync(); err != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.err == nil {
			w.err = &Error{Path: w.path, Field: "fsync", Offset: -1, Err: err}
		}
		return w.err
	}
	return nil
}

// Close flushes, sets EOLLocation to the end of the last block, fsyncs and
// closes the file. It is idempotent: later calls return the first result.
// If any write failed, the header keeps EOLLocation 0 and readers see the
// log as not closed properly.
func (w *Writer) Close() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.closeErr
	}
	w.closed = true
	err := w.err
	if err == nil {
		err = w.flushBlocks()
	}
	if err == nil {
		w.hdr.CurrentSize = uint64(w.end)
		w.hdr.EOL = uint64(w.end)
		w.hdr.LastModified = stamp(w.now())
		if err = w.writeHeader(); err == nil {
			err = w.sync()
		}
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = &Error{Path: w.path, Field: "close", Offset: -1, Err: cerr}
	}
	w.closeErr = err
	return err
}

func (w *Writer) usable() error {
	if w.closed {
		return fmt.Errorf("hrl %s: %w", w.path, ErrClosed)
	}
	return w.err
}

// flushBlocks writes the pending entries' block, then fsyncs so that data
// and blocks are durable before any header points at them.
func (w *Writer) flushBlocks() error {
	if len(w.pending) > 0 {
		if err := w.writeBlock(); err != nil {
			return err
		}
	}
	return w.sync()
}

func (w *Writer) writeBlock() error {
	marshalBlock(w.block, uint64(w.end-w.lastBlock), w.pending)
	if err := w.writeAt(w.block, w.end, "metadata block"); err != nil {
		return err
	}
	w.hdr.TotalEntries += uint64(len(w.pending))
	w.pending = w.pending[:0]
	w.lastBlock = w.end
	w.end += int64(len(w.block))
	w.dirty = true
	return nil
}

func (w *Writer) writeHeader() error {
	w.hdr.marshal(w.hbuf)
	if err := w.writeAt(w.hbuf, 0, "header"); err != nil {
		return err
	}
	w.dirty = false
	return nil
}

func (w *Writer) writeAt(b []byte, off int64, what string) error {
	if _, err := w.f.WriteAt(b, off); err != nil {
		w.err = &Error{Path: w.path, Field: what, Offset: off, Err: err}
		return w.err
	}
	return nil
}

func (w *Writer) sync() error {
	if err := w.f.Sync(); err != nil {
		w.err = &Error{Path: w.path, Field: "fsync", Offset: -1, Err: err}
		return w.err
	}
	return nil
}

// syncDir makes the new file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("hrl create: open directory for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("hrl create: fsync directory %s: %w", dir, err)
	}
	return nil
}
