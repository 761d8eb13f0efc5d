package vhdx

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"unicode/utf16"

	"github.com/google/uuid"
)

// Layout of the 1 MiB header section ([MS-VHDX] 2.2).
const (
	kib = 1 << 10
	mib = 1 << 20

	headerSectionSize = 1 * mib
	header1Offset     = 64 * kib
	header2Offset     = 128 * kib
	headerSize        = 4 * kib

	creatorOffset = 8
	creatorSize   = 512
)

// Header fields, as offsets into the 4 KiB header ([MS-VHDX] 2.2.2).
const (
	hSignature     = 0  // "head"
	hChecksum      = 4  // CRC-32C of the 4 KiB, this field zeroed
	hSequence      = 8  // uint64
	hFileWriteGUID = 16 // GUID
	hDataWriteGUID = 32 // GUID
	hLogGUID       = 48 // GUID
	hLogVersion    = 64 // uint16, must be 0
	hVersion       = 66 // uint16, must be 1
	hLogLength     = 68 // uint32, multiple of 1 MiB
	hLogOffset     = 72 // uint64, multiple of 1 MiB, at least 1 MiB
)

var (
	fileSignature   = []byte("vhdxfile")
	headerSignature = []byte("head")
	castagnoli      = crc32.MakeTable(crc32.Castagnoli)
)

// Info is what asr's tracker needs from a VHDX file: the identifiers of its
// current header and the disk geometry from its metadata region.
type Info struct {
	Path    string // as given to Read or Parse
	Creator string // the File Type Identifier's creator, e.g. "QEMU v7.2.22"

	HeaderOffset int64  // of the current header: 65536 (header 1) or 131072 (header 2)
	Sequence     uint64 // the current header's SequenceNumber

	// GUIDs in RFC 4122 byte order: String() prints what Windows prints for
	// the same GUID (see doc.go).
	FileWriteGUID uuid.UUID // changes whenever the file is opened for writing
	DataWriteGUID uuid.UUID // changes before the first write to the virtual disk after an open
	LogGUID       uuid.UUID // as stored; uuid.Nil: the log is empty

	LogOffset  uint64 // byte offset of the log in the file
	LogLength  uint32 // bytes
	LogPending bool   // the log holds valid entries for LogGUID, to be replayed

	VirtualSize       int64  // Virtual Disk Size metadata item, bytes
	LogicalSectorSize uint32 // Logical Sector Size metadata item: 512 or 4096

	// File Parameters metadata item ([MS-VHDX] 2.6.2.1).
	BlockSize            uint32 // payload block size: a power of 2 from 1 MiB to 256 MiB
	LeaveBlocksAllocated bool   // set on fixed disks; Extents reads the BAT all the same
	HasParent            bool   // a differencing disk: Extents refuses it

	BATOffset      uint64 // byte offset of the BAT region in the file
	BATLength      uint32 // bytes
	MetadataOffset uint64 // byte offset of the metadata region in the file
	MetadataLength uint32 // bytes
}

// LogEmpty reports whether the log holds nothing to replay. Per [MS-VHDX]
// 2.2.2 a zero LogGuid means the log is empty; a non-zero one makes only
// the log entries carrying it valid, so a LogGuid with no valid entry
// behind it (what a writer leaves when it stops after setting LogGuid and
// before logging anything) is an empty log too. qemu reads it the same way.
func (i Info) LogEmpty() bool { return !i.LogPending }

// Read opens the VHDX file at path and parses it with Parse. Only regular
// files are read; anything else is refused with ErrNotVHDX before it is
// opened, so a FIFO cannot block the call.
func Read(path string) (Info, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	return Parse(f, size, path)
}

// openRegular opens path for reading if it is a regular file (ErrNotVHDX
// otherwise, decided before opening) and returns it with its size.
func openRegular(path string) (*os.File, int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, fmt.Errorf("vhdx: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, 0, formatErr(path, "file type", -1, ErrNotVHDX, "%s is not a regular file", st.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("vhdx: %w", err)
	}
	if st, err = f.Stat(); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("vhdx: %w", err)
	}
	return f, st.Size(), nil
}

// Parse reads the VHDX held in the first size bytes of r; name is used in
// Info.Path and in error messages. It reads the header section, the
// metadata table and items, and, only when LogGuid is set, the log entry
// headers (not the BAT: see Extents); it allocates a few hundred KiB at most whatever size and the
// structures claim, so any input is safe to parse.
func Parse(r io.ReaderAt, size int64, name string) (Info, error) {
	p := &parser{r: r, size: size, path: name}
	info := Info{Path: name}
	var err error
	if info.Creator, err = p.fileType(); err != nil {
		return Info{}, err
	}
	h, err := p.currentHeader()
	if err != nil {
		return Info{}, err
	}
	info.HeaderOffset, info.Sequence = h.offset, h.sequence
	info.FileWriteGUID, info.DataWriteGUID, info.LogGUID = h.fileWrite, h.dataWrite, h.log
	info.LogOffset, info.LogLength = h.logOffset, h.logLength
	rs, err := p.regionTable(h)
	if err != nil {
		return Info{}, err
	}
	info.BATOffset, info.BATLength = rs.bat.off, uint32(rs.bat.length)
	info.MetadataOffset, info.MetadataLength = rs.meta.off, uint32(rs.meta.length)
	if err = p.metadata(rs.meta, &info); err != nil {
		return Info{}, err
	}
	if info.LogPending, err = p.logPending(h); err != nil {
		return Info{}, err
	}
	return info, nil
}

type parser struct {
	r    io.ReaderAt
	size int64
	path string
}

// read returns n bytes at off, or ErrCorrupt naming field when the file
// ends first.
func (p *parser) read(off int64, n int, field string) ([]byte, error) {
	b := make([]byte, n)
	if err := p.readInto(b, off, field); err != nil {
		return nil, err
	}
	return b, nil
}

// readInto fills b from off, or returns ErrCorrupt naming field when the
// file ends first.
func (p *parser) readInto(b []byte, off int64, field string) error {
	n := len(b)
	if off < 0 || off > p.size || p.size-off < int64(n) {
		return formatErr(p.path, field, off, ErrCorrupt,
			"the file is %d bytes and ends before the %d bytes of the %s", p.size, n, field)
	}
	got, err := p.r.ReadAt(b, off)
	if got == n {
		return nil
	}
	if err == io.EOF || err == nil {
		return formatErr(p.path, field, off, ErrCorrupt,
			"read %d of %d bytes: the file ended early (shrinking while read?)", got, n)
	}
	return fmt.Errorf("vhdx %s: reading %s at offset %d: %w", p.path, field, off, err)
}

// fileType checks the File Type Identifier ([MS-VHDX] 2.2.1) and returns
// its creator string.
func (p *parser) fileType() (string, error) {
	if p.size < int64(len(fileSignature)) {
		return "", formatErr(p.path, "file type identifier", -1, ErrNotVHDX,
			"the file is %d bytes, too short for the \"vhdxfile\" signature", p.size)
	}
	sig, err := p.read(0, len(fileSignature), "file type identifier")
	if err != nil {
		return "", err
	}
	if !bytes.Equal(sig, fileSignature) {
		return "", formatErr(p.path, "file type identifier", 0, ErrNotVHDX,
			"signature %q, want \"vhdxfile\"", sig)
	}
	if p.size < headerSectionSize {
		return "", formatErr(p.path, "header section", -1, ErrCorrupt,
			"the file is %d bytes, shorter than the 1 MiB header section", p.size)
	}
	b, err := p.read(creatorOffset, creatorSize, "creator")
	if err != nil {
		return "", err
	}
	u := make([]uint16, 0, creatorSize/2)
	for i := 0; i < creatorSize; i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}

type header struct {
	offset               int64
	raw                  []byte
	sequence             uint64
	fileWrite, dataWrite uuid.UUID
	log                  uuid.UUID
	logVersion, version  uint16
	logLength            uint32
	logOffset            uint64
	valid                bool
	problem              string // why it is not valid
}

// readHeader reads the header at off. A header that fails its signature or
// checksum comes back with valid false and the reason in problem.
func (p *parser) readHeader(off int64, field string) (header, error) {
	b, err := p.read(off, headerSize, field)
	if err != nil {
		return header{}, err
	}
	h := header{offset: off, raw: b}
	stored, computed := binary.LittleEndian.Uint32(b[hChecksum:]), checksum(b, hChecksum)
	switch {
	case !bytes.Equal(b[hSignature:hSignature+4], headerSignature):
		h.problem = fmt.Sprintf("%s at offset %d has signature %q, want \"head\"", field, off, b[:4])
		return h, nil
	case stored != computed:
		h.problem = fmt.Sprintf("%s at offset %d has checksum 0x%08x, computed 0x%08x", field, off, stored, computed)
		return h, nil
	}
	h.valid = true
	h.sequence = binary.LittleEndian.Uint64(b[hSequence:])
	h.fileWrite = guidAt(b[hFileWriteGUID:])
	h.dataWrite = guidAt(b[hDataWriteGUID:])
	h.log = guidAt(b[hLogGUID:])
	h.logVersion = binary.LittleEndian.Uint16(b[hLogVersion:])
	h.version = binary.LittleEndian.Uint16(b[hVersion:])
	h.logLength = binary.LittleEndian.Uint32(b[hLogLength:])
	h.logOffset = binary.LittleEndian.Uint64(b[hLogOffset:])
	return h, nil
}

// currentHeader picks the current header ([MS-VHDX] 2.2.2): the only valid
// one, or the valid one with the higher SequenceNumber. Two valid headers
// with one sequence number are accepted only when byte-identical (tools
// such as Disk2VHD write them so); then header 1 is used.
func (p *parser) currentHeader() (header, error) {
	h1, err := p.readHeader(header1Offset, "header 1")
	if err != nil {
		return header{}, err
	}
	h2, err := p.readHeader(header2Offset, "header 2")
	if err != nil {
		return header{}, err
	}
	var cur header
	switch {
	case !h1.valid && !h2.valid:
		return header{}, formatErr(p.path, "no valid header", -1, ErrCorrupt, "%s; %s", h1.problem, h2.problem)
	case !h2.valid, h1.valid && h1.sequence > h2.sequence:
		cur = h1
	case !h1.valid, h2.sequence > h1.sequence:
		cur = h2
	case bytes.Equal(h1.raw, h2.raw):
		cur = h1
	default:
		return header{}, formatErr(p.path, "headers", -1, ErrCorrupt,
			"headers 1 and 2 are both valid with sequence number %d but differ, so neither is current", h1.sequence)
	}
	return cur, p.checkHeader(cur)
}

// checkHeader checks the fields of the current header this package relies
// on: the format versions and where the log lies.
func (p *parser) checkHeader(h header) error {
	field := "header 1"
	if h.offset == header2Offset {
		field = "header 2"
	}
	switch {
	case h.version != 1:
		return formatErr(p.path, field+" Version", h.offset, ErrUnsupported, "version %d, this package reads version 1", h.version)
	case h.logVersion != 0:
		return formatErr(p.path, field+" LogVersion", h.offset, ErrUnsupported, "log version %d, this package knows log version 0", h.logVersion)
	case h.logOffset < mib || h.logOffset%mib != 0 || h.logLength%mib != 0:
		return formatErr(p.path, field+" log location", h.offset, ErrCorrupt,
			"LogOffset %d and LogLength %d must be multiples of 1 MiB, LogOffset at least 1 MiB", h.logOffset, h.logLength)
	case h.logOffset > uint64(p.size) || uint64(h.logLength) > uint64(p.size)-h.logOffset:
		return formatErr(p.path, field+" log location", h.offset, ErrCorrupt,
			"the log (%d bytes at offset %d) ends past the end of the %d-byte file", h.logLength, h.logOffset, p.size)
	}
	return nil
}

// checksum is the CRC-32C of b with the 4-byte checksum field at skip
// taken as zero.
func checksum(b []byte, skip int) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, b[:skip])
	c = crc32.Update(c, castagnoli, zero[:])
	return crc32.Update(c, castagnoli, b[skip+4:])
}

// guidAt decodes a GUID stored in the Windows layout (MS-DTYP GUID: Data1
// uint32, Data2 and Data3 uint16 little-endian, Data4 8 bytes as is) into
// RFC 4122 byte order.
func guidAt(b []byte) uuid.UUID {
	var u uuid.UUID
	u[0], u[1], u[2], u[3] = b[3], b[2], b[1], b[0]
	u[4], u[5] = b[5], b[4]
	u[6], u[7] = b[7], b[6]
	copy(u[8:], b[8:16])
	return u
}
