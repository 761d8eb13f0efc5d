package hrl

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
)

// Entry is one validated write: Len bytes for disk offset Off, stored in
// the log file at FileOff.
type Entry struct {
	Off     int64
	Len     int64
	FileOff int64
	Time    time.Time
}

// Log is a validated log: every checksum held. Entries are in write order.
type Log struct {
	Path                          string
	ID, PreviousID, DataWriteGUID uuid.UUID
	Created, LastModified         time.Time
	MetadataSize                  int
	// End is EOLLocation for a closed log; for a log from Salvage it is the
	// end of the validated prefix.
	End       int64
	Closed    bool
	Entries   []Entry
	DataBytes int64
}

// streamBuf bounds the memory used to verify data checksums.
const streamBuf = 1 << 20

// Open reads and validates a closed log: header, every metadata block and
// entry checksum, and every entry's DataChecksum (data is streamed through
// a bounded buffer). A log with EOLLocation 0 yields ErrNotClosed.
func Open(path string) (*Log, error) {
	l, _, err := openFile(path, false)
	return l, err
}

// Salvage recovers the durable prefix of a log that was not closed (it
// works on a closed log too). HRL cannot be walked forwards, since a
// block's position depends on the lengths of the data before it, which
// only the block records; so Salvage walks backwards like Open, anchored at
// the header's CurrentSize, which Flush sets only after the blocks it counts
// are fsynced. It returns the validated entries (every checksum held) and
// the number of file bytes past the prefix: writes logged there are
// unknown, so a non-zero tail still needs another source (or a full resync)
// for the regions it may cover.
func Salvage(path string) (*Log, int64, error) {
	return openFile(path, true)
}

func openFile(path string, salvage bool) (*Log, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("hrl open: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("hrl open: %w", err)
	}
	return readLog(f, fi.Size(), path, salvage)
}

// readLog does Open (or Salvage) on any ReaderAt of the given size.
func readLog(r io.ReaderAt, size int64, path string, salvage bool) (*Log, int64, error) {
	h, err := readHeader(r, size, path)
	if err != nil {
		return nil, 0, err
	}
	end := int64(h.EOL)
	field, foff := "EOLLocation", int64(hEOL)
	switch {
	case h.EOL == 0 && !salvage:
		return nil, 0, errAt(path, field, foff, ErrNotClosed, "is 0")
	case h.EOL == 0:
		end, field, foff = int64(h.CurrentSize), "CurrentSize", hCurrentSize
	}
	if end < 0 || end > size {
		return nil, 0, errAt(path, field, foff, ErrTruncated, "is %d but the file has %d bytes", uint64(end), size)
	}
	l := &Log{
		Path: path, ID: h.ID, PreviousID: h.PrevID, DataWriteGUID: h.DataWriteGUID,
		Created: unstamp(h.Created), LastModified: unstamp(h.LastModified),
		MetadataSize: int(h.MetadataSize), End: end, Closed: h.EOL != 0,
	}
	if err := walk(r, path, h, end, field, foff, l); err != nil {
		return nil, 0, err
	}
	return l, size - end, nil
}

// readHeader reads and checks the parts of the header every reader needs.
func readHeader(r io.ReaderAt, size int64, path string) (header, error) {
	if size < HeaderSize {
		return header{}, errAt(path, "header", 0, ErrTruncated, "file has %d bytes, the header alone needs %d", size, HeaderSize)
	}
	b := make([]byte, HeaderSize)
	if err := readAt(r, b, 0); err != nil {
		return header{}, readErr(path, "header", 0, err)
	}
	h := parseHeader(b)
	if h.Cookie != cookie {
		return h, errAt(path, "Cookie", hCookie, ErrCorrupt, "want %q, have %q: not an HRL file", cookie[:], h.Cookie[:])
	}
	if sum := checksum(b, hChecksum); sum != h.Checksum {
		return h, errAt(path, "Checksum", hChecksum, ErrCorrupt, "header sums to 0x%08x, field holds 0x%08x", sum, h.Checksum)
	}
	if h.Version>>16 != Version2>>16 {
		return h, errAt(path, "LogFormatVersion", hVersion, ErrCorrupt, "want major version 2 (0x%08x), have 0x%08x", Version2, h.Version)
	}
	if h.FileType != 0 {
		return h, errAt(path, "FileType", hFileType, ErrCorrupt, "want 0 (HRL), have %d", h.FileType)
	}
	if h.ErrorCode != 0 {
		return h, errAt(path, "ErrorCode", hErrCode, ErrCorrupt, "the writer recorded error %d", h.ErrorCode)
	}
	if ms := int64(h.MetadataSize); ms%512 != 0 || ms < 512 || ms > maxMetadataSize || ms > size {
		return h, errAt(path, "MetadataSize", hMetadataSize, ErrCorrupt, "%d is not a multiple of 512 in [512, min(%d, file size %d)]", ms, maxMetadataSize, size)
	}
	return h, nil
}

// block is one metadata block found by the backward walk; its entries are
// raw[first:first+n].
type block struct {
	off      int64
	first, n int
}

// walk follows PreviousMetadataLocation back from the block ending at end,
// then replays the blocks forwards, locating and checksumming each entry's
// data, and fills l.Entries.
func walk(r io.ReaderAt, path string, h header, end int64, endField string, endOff int64, l *Log) error {
	ms := int64(h.MetadataSize)
	if end < HeaderSize+ms {
		return errAt(path, endField, endOff, ErrCorrupt, "%d leaves no room for a %d-byte metadata block after the header", end, ms)
	}
	perBlock := int((ms - blockHeaderSize) / entrySize)
	buf := make([]byte, ms)
	var blocks []block
	var raw []rawEntry
	le := binary.LittleEndian
	for cur := end - ms; ; {
		if err := readAt(r, buf, cur); err != nil {
			return readErr(path, "metadata block", cur, err)
		}
		if sum := checksum(buf[:blockHeaderSize], bChecksum); sum != le.Uint32(buf[bChecksum:]) {
			return errAt(path, "metadata block Checksum", cur+bChecksum, ErrCorrupt, "block header sums to 0x%08x, field holds 0x%08x", sum, le.Uint32(buf[bChecksum:]))
		}
		n := le.Uint32(buf[bValid:])
		if n > uint32(perBlock) {
			return errAt(path, "ValidMetadataEntries", cur+bValid, ErrCorrupt, "%d entries, a %d-byte block holds %d", n, ms, perBlock)
		}
		blocks = append(blocks, block{off: cur, first: len(raw), n: int(n)})
		for i := range int(n) {
			p := buf[blockHeaderSize+i*entrySize:][:entrySize]
			eoff := cur + blockHeaderSize + int64(i)*entrySize
			if sum := checksum(p, eChecksum); sum != le.Uint32(p[eChecksum:]) {
				return errAt(path, "metadata entry Checksum", eoff+eChecksum, ErrCorrupt, "entry %d sums to 0x%08x, field holds 0x%08x", i, sum, le.Uint32(p[eChecksum:]))
			}
			if p[eOp] != opWrite {
				return errAt(path, "MetaOperation", eoff+eOp, ErrCorrupt, "want 1 (write), have %d", p[eOp])
			}
			e := rawEntry{Off: le.Uint64(p[eByteOffset:]), Len: le.Uint32(p[eDataLength:]), Time: le.Uint32(p[eTimeStamp:]), DataSum: le.Uint32(p[eDataChecksum:])}
			if e.Off > uint64(1<<63-1)-uint64(e.Len) {
				return errAt(path, "ByteOffset", eoff+eByteOffset, ErrCorrupt, "range [%d, +%d) is past any disk", e.Off, e.Len)
			}
			raw = append(raw, e)
		}
		prev := le.Uint64(buf[bPrev:])
		if prev == 0 {
			break
		}
		if prev < uint64(ms) || prev > uint64(cur-HeaderSize) {
			return errAt(path, "PreviousMetadataLocation", cur+bPrev, ErrCorrupt, "%d would put the previous block outside [%d, %d]", prev, HeaderSize, cur-ms)
		}
		cur -= int64(prev)
	}
	if uint64(len(raw)) != h.TotalEntries {
		return errAt(path, "TotalMetadataEntries", hTotalEntries, ErrCorrupt, "header says %d entries, the blocks list %d", h.TotalEntries, len(raw))
	}
	return replay(r, path, ms, blocks, raw, l)
}

// replay checks that each block's data exactly fills the gap before it and
// that every DataChecksum holds, reading the file once, in order.
func replay(r io.ReaderAt, path string, ms int64, blocks []block, raw []rawEntry, l *Log) error {
	sr := io.NewSectionReader(r, HeaderSize, l.End-HeaderSize)
	br := bufio.NewReaderSize(sr, int(min(streamBuf, l.End-HeaderSize)))
	l.Entries = make([]Entry, 0, len(raw))
	pos := int64(HeaderSize)
	for bi := len(blocks) - 1; bi >= 0; bi-- {
		b := blocks[bi]
		var want int64
		for _, e := range raw[b.first : b.first+b.n] {
			want += int64(e.Len)
		}
		if want != b.off-pos {
			return errAt(path, "DataLength", b.off+blockHeaderSize+eDataLength, ErrCorrupt,
				"the block's %d entries hold %d data bytes, but the block is %d bytes after the end of the previous block", b.n, want, b.off-pos)
		}
		for i, e := range raw[b.first : b.first+b.n] {
			sum, err := sumStream(br, int64(e.Len))
			if err != nil {
				return readErr(path, "data", pos, err)
			}
			if ^sum != e.DataSum {
				return errAt(path, "DataChecksum", b.off+blockHeaderSize+int64(i)*entrySize+eDataChecksum, ErrCorrupt,
					"data at byte %d (%d bytes) sums to 0x%08x, entry holds 0x%08x", pos, e.Len, ^sum, e.DataSum)
			}
			l.Entries = append(l.Entries, Entry{Off: int64(e.Off), Len: int64(e.Len), FileOff: pos, Time: unstamp(e.Time)})
			l.DataBytes += int64(e.Len)
			pos += int64(e.Len)
		}
		if _, err := br.Discard(int(ms)); err != nil {
			return readErr(path, "metadata block", pos, err)
		}
		pos += ms
	}
	return nil
}

// sumStream adds up the next n bytes of br without copying them.
func sumStream(br *bufio.Reader, n int64) (uint32, error) {
	var s uint32
	for n > 0 {
		k := int(min(n, int64(br.Size())))
		p, err := br.Peek(k)
		s += byteSum(p)
		if err != nil {
			return s, err
		}
		br.Discard(k)
		n -= int64(k)
	}
	return s, nil
}

// readErr turns a short read into ErrTruncated (the file shrank or lies
// about its size) and keeps other I/O errors as they are.
func readErr(path, what string, off int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errAt(path, what, off, ErrTruncated, "file ends inside it")
	}
	return &Error{Path: path, Field: what, Offset: off, Err: err}
}

// readAt fills b from off; a ReaderAt may report io.EOF with a full read.
func readAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}
