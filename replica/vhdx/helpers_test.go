package vhdx

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"

	"github.com/google/uuid"
)

// sparse is an in-memory file of size bytes: zeros except for segments,
// later segments over earlier ones. It lets tests build multi-MiB layouts
// from a few KiB.
type sparse struct {
	size int64
	segs []seg
}

type seg struct {
	off int64
	b   []byte
}

func (s *sparse) put(off int64, b []byte) {
	s.segs = append(s.segs, seg{off, append([]byte(nil), b...)})
}

func (s *sparse) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= s.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := s.size - off; int64(n) > rest {
		n = int(rest)
	}
	clear(p[:n])
	for _, g := range s.segs {
		lo, hi := max(off, g.off), min(off+int64(n), g.off+int64(len(g.b)))
		if lo < hi {
			copy(p[lo-off:hi-off], g.b[lo-g.off:hi-g.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// file writes s to a new file in a temporary directory (sparse on disk).
func (s *sparse) file(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.vhdx")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(s.size); err != nil {
		t.Fatal(err)
	}
	for _, g := range s.segs {
		b := g.b
		if g.off >= s.size {
			continue
		}
		if end := g.off + int64(len(b)); end > s.size {
			b = b[:s.size-g.off]
		}
		if _, err := f.WriteAt(b, g.off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// hdr is one header's fields; build fills in signature and checksum.
type hdr struct {
	seq                       uint64
	fileWrite, dataWrite, log uuid.UUID
	logVersion, version       uint16
	logLength                 uint32
	logOffset                 uint64
}

type regionEntry struct {
	id       uuid.UUID
	off      uint64
	length   uint32
	required bool
}

type itemEntry struct {
	id                   uuid.UUID
	off, length          uint32
	user, virt, required bool
	data                 []byte
}

// layout describes a VHDX to build, in spec terms.
type layout struct {
	size     int64
	creator  string
	headers  [2]hdr
	regions  []regionEntry
	metaOff  int64 // file offset of the metadata region
	items    []itemEntry
	rtCopy   bool // also write the region table copy at 256 KiB
	rawItems bool // items keep their off/length as given (else Length = len(data))
	mdCount  int  // if not 0, the metadata table's EntryCount instead of len(items)
}

// Fixed GUIDs of the pinned layout, in their text form.
var (
	testFileWrite = uuid.MustParse("01234567-89ab-cdef-0123-456789abcdef")
	testDataWrite = uuid.MustParse("fedcba98-7654-3210-fedc-ba9876543210")
	testDiskID    = uuid.MustParse("11111111-2222-3333-4444-555555555555")
)

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// baseLayout is the pinned vector: a 4 MiB dynamic-like VHDX of a 64 MiB
// disk, laid out as qemu-img lays one out: log at 1 MiB, metadata at
// 2 MiB, BAT at 3 MiB, all 1 MiB long. Header 2 is current (sequence 7).
func baseLayout() *layout {
	h := hdr{fileWrite: testFileWrite, dataWrite: testDataWrite, version: 1, logLength: mib, logOffset: mib}
	h1, h2 := h, h
	h1.seq, h2.seq = 6, 7
	return &layout{
		size:    4 * mib,
		creator: "asr test ✓",
		headers: [2]hdr{h1, h2},
		regions: []regionEntry{
			{id: regionBAT, off: 3 * mib, length: mib, required: true},
			{id: regionMetadata, off: 2 * mib, length: mib, required: true},
		},
		metaOff: 2 * mib,
		items: []itemEntry{
			{id: itemFileParameters, required: true, data: le64(32 * mib)},
			{id: itemVirtualDiskSize, virt: true, required: true, data: le64(64 * mib)},
			{id: itemVirtualDiskID, virt: true, required: true, data: putGUIDBytes(testDiskID)},
			{id: itemLogicalSectorSize, virt: true, required: true, data: le32(512)},
			{id: itemPhysicalSectorSize, virt: true, required: true, data: le32(4096)},
		},
		rtCopy: true,
	}
}

func putGUIDBytes(u uuid.UUID) []byte {
	return []byte{u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6],
		u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]}
}

func ftiBlock(creator string) []byte {
	b := make([]byte, creatorOffset+creatorSize)
	copy(b, fileSignature)
	for i, c := range utf16.Encode([]rune(creator)) {
		binary.LittleEndian.PutUint16(b[creatorOffset+2*i:], c)
	}
	return b
}

func headerBlock(h hdr) []byte {
	b := make([]byte, headerSize)
	copy(b, headerSignature)
	binary.LittleEndian.PutUint64(b[hSequence:], h.seq)
	copy(b[hFileWriteGUID:], putGUIDBytes(h.fileWrite))
	copy(b[hDataWriteGUID:], putGUIDBytes(h.dataWrite))
	copy(b[hLogGUID:], putGUIDBytes(h.log))
	binary.LittleEndian.PutUint16(b[hLogVersion:], h.logVersion)
	binary.LittleEndian.PutUint16(b[hVersion:], h.version)
	binary.LittleEndian.PutUint32(b[hLogLength:], h.logLength)
	binary.LittleEndian.PutUint64(b[hLogOffset:], h.logOffset)
	binary.LittleEndian.PutUint32(b[hChecksum:], checksum(b, hChecksum))
	return b
}

// putChecksum stores the CRC-32C of b (field at skip taken as zero) at skip.
func putChecksum(b []byte, skip int) {
	binary.LittleEndian.PutUint32(b[skip:], checksum(b, skip))
}

func regionBlock(entries []regionEntry) []byte {
	b := make([]byte, regionTableSize)
	copy(b, regionSignature)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(entries)))
	for i, r := range entries {
		e := b[regionHeaderSize+i*regionEntrySize:]
		copy(e, putGUIDBytes(r.id))
		binary.LittleEndian.PutUint64(e[16:], r.off)
		binary.LittleEndian.PutUint32(e[24:], r.length)
		if r.required {
			e[28] = 1
		}
	}
	binary.LittleEndian.PutUint32(b[4:], checksum(b, 4))
	return b
}

// metadataBlock returns the metadata table and, for each item with data,
// its region offset and bytes. Items without an explicit offset are placed
// from 64 KiB on, 4 KiB apart.
func metadataBlock(items []itemEntry, raw bool) (table []byte, data map[uint32][]byte) {
	table = make([]byte, metadataTableSize)
	copy(table, metadataSignature)
	binary.LittleEndian.PutUint16(table[10:], uint16(len(items)))
	data = map[uint32][]byte{}
	for i, it := range items {
		if !raw {
			it.off, it.length = uint32(metadataTableSize+i*4*kib), uint32(len(it.data))
			if it.length == 0 {
				it.off = 0
			}
		}
		e := table[metadataHeaderSize+i*metadataEntrySize:]
		copy(e, putGUIDBytes(it.id))
		binary.LittleEndian.PutUint32(e[16:], it.off)
		binary.LittleEndian.PutUint32(e[20:], it.length)
		var flags uint32
		if it.user {
			flags |= 1
		}
		if it.virt {
			flags |= 2
		}
		if it.required {
			flags |= 4
		}
		binary.LittleEndian.PutUint32(e[24:], flags)
		if len(it.data) > 0 {
			data[it.off] = it.data
		}
	}
	return table, data
}

func (l *layout) build() *sparse {
	s := &sparse{size: l.size}
	s.put(0, ftiBlock(l.creator))
	s.put(header1Offset, headerBlock(l.headers[0]))
	s.put(header2Offset, headerBlock(l.headers[1]))
	rt := regionBlock(l.regions)
	s.put(regionTable1Offset, rt)
	if l.rtCopy {
		s.put(regionTable2Offset, rt)
	}
	table, data := metadataBlock(l.items, l.rawItems)
	if l.mdCount != 0 {
		binary.LittleEndian.PutUint16(table[10:], uint16(l.mdCount))
	}
	s.put(l.metaOff, table)
	for off, b := range data {
		s.put(l.metaOff+int64(off), b)
	}
	return s
}

// parse builds l and parses it in memory.
func (l *layout) parse() (Info, error) {
	s := l.build()
	return Parse(s, s.size, "test.vhdx")
}

// logEntry returns a log entry of length bytes for guid with sequence seq
// and a valid checksum; the payload is a pattern so the checksum covers
// more than zeros.
func logEntry(guid uuid.UUID, seq uint64, length int) []byte {
	b := make([]byte, length)
	for i := logHeaderSize; i < length; i++ {
		b[i] = byte(i * 7)
	}
	copy(b, logEntrySignature)
	binary.LittleEndian.PutUint32(b[leEntryLength:], uint32(length))
	binary.LittleEndian.PutUint64(b[leSequence:], seq)
	copy(b[leLogGUID:], putGUIDBytes(guid))
	putChecksum(b, leChecksum)
	return b
}

// putLog writes entry at pos of the circular log [logOff, logOff+logLen).
func (s *sparse) putLog(logOff, logLen, pos int64, entry []byte) {
	first := min(int64(len(entry)), logLen-pos)
	s.put(logOff+pos, entry[:first])
	if rest := entry[first:]; len(rest) > 0 {
		s.put(logOff, rest)
	}
}
