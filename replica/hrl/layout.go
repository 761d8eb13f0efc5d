package hrl

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/google/uuid"
)

// Sizes and field offsets, named as in HRL.md. Offsets are relative to the
// start of their structure.
const (
	HeaderSize          = 4096
	DefaultMetadataSize = 4096
	blockHeaderSize     = 32
	entrySize           = 32
	// maxMetadataSize bounds the one allocation made from a header field;
	// 1 MiB already holds 32767 entries.
	maxMetadataSize = 1 << 20
	// maxEntryLen keeps DataLength (4 bytes) sector-aligned when Write
	// splits a huge buffer.
	maxEntryLen = 1 << 30

	Version2    = 0x00020000
	opWrite     = 1
	epoch2000   = 946684800 // 2000-01-01T00:00:00Z in Unix seconds
	creatorName = "asr"
	creatorVer  = 0x00010000 // 1.0, major in the high half like LogFormatVersion

	hCookie, hVersion, hTimeStamp, hCreator   = 0, 8, 12, 16
	hCreatorVersion, hOriginalSize            = 20, 24
	hCurrentSize, hChecksum, hEOL, hErrCode   = 32, 40, 44, 52
	hMetadataSize, hUniqueID, hPrevID         = 56, 60, 76
	hLastModified, hTotalEntries, hFileType   = 92, 96, 104
	hFlags, hDataWriteGUID                    = 108, 110
	bPrev, bValid, bChecksum                  = 0, 8, 12
	eByteOffset, eChecksum, eDataLength       = 0, 8, 12
	eTimeStamp, eOp, eDataChecksum, eLocation = 16, 20, 21, 25
)

var cookie = [8]byte{'m', 's', 'c', 't', 'l', 'o', 'g', 0}

// header is the file header, fields in file order.
type header struct {
	Cookie         [8]byte
	Version        uint32
	Created        uint32
	Creator        [4]byte
	CreatorVersion uint32
	OriginalSize   uint64
	CurrentSize    uint64
	Checksum       uint32
	EOL            uint64
	ErrorCode      int32
	MetadataSize   uint32
	ID, PrevID     uuid.UUID
	LastModified   uint32
	TotalEntries   uint64
	FileType       uint32
	Flags          uint16
	DataWriteGUID  uuid.UUID
}

// marshal fills b (HeaderSize bytes) and stamps the checksum into b and h.
func (h *header) marshal(b []byte) {
	clear(b[:HeaderSize])
	le := binary.LittleEndian
	copy(b[hCookie:], h.Cookie[:])
	le.PutUint32(b[hVersion:], h.Version)
	le.PutUint32(b[hTimeStamp:], h.Created)
	copy(b[hCreator:], h.Creator[:])
	le.PutUint32(b[hCreatorVersion:], h.CreatorVersion)
	le.PutUint64(b[hOriginalSize:], h.OriginalSize)
	le.PutUint64(b[hCurrentSize:], h.CurrentSize)
	le.PutUint64(b[hEOL:], h.EOL)
	le.PutUint32(b[hErrCode:], uint32(h.ErrorCode))
	le.PutUint32(b[hMetadataSize:], h.MetadataSize)
	putGUID(b[hUniqueID:], h.ID)
	putGUID(b[hPrevID:], h.PrevID)
	le.PutUint32(b[hLastModified:], h.LastModified)
	le.PutUint64(b[hTotalEntries:], h.TotalEntries)
	le.PutUint32(b[hFileType:], h.FileType)
	le.PutUint16(b[hFlags:], h.Flags)
	putGUID(b[hDataWriteGUID:], h.DataWriteGUID)
	h.Checksum = checksum(b[:HeaderSize], hChecksum)
	le.PutUint32(b[hChecksum:], h.Checksum)
}

// parseHeader decodes b (HeaderSize bytes) without judging it.
func parseHeader(b []byte) header {
	le := binary.LittleEndian
	var h header
	copy(h.Cookie[:], b[hCookie:])
	h.Version = le.Uint32(b[hVersion:])
	h.Created = le.Uint32(b[hTimeStamp:])
	copy(h.Creator[:], b[hCreator:])
	h.CreatorVersion = le.Uint32(b[hCreatorVersion:])
	h.OriginalSize = le.Uint64(b[hOriginalSize:])
	h.CurrentSize = le.Uint64(b[hCurrentSize:])
	h.Checksum = le.Uint32(b[hChecksum:])
	h.EOL = le.Uint64(b[hEOL:])
	h.ErrorCode = int32(le.Uint32(b[hErrCode:]))
	h.MetadataSize = le.Uint32(b[hMetadataSize:])
	h.ID = getGUID(b[hUniqueID:])
	h.PrevID = getGUID(b[hPrevID:])
	h.LastModified = le.Uint32(b[hLastModified:])
	h.TotalEntries = le.Uint64(b[hTotalEntries:])
	h.FileType = le.Uint32(b[hFileType:])
	h.Flags = le.Uint16(b[hFlags:])
	h.DataWriteGUID = getGUID(b[hDataWriteGUID:])
	return h
}

// rawEntry is a metadata entry as stored, before its data is located.
type rawEntry struct {
	Off     uint64
	Len     uint32
	Time    uint32
	DataSum uint32
}

// marshalBlock fills b (one metadata block) with its header and entries.
// Entries past len(es) stay zero: ValidMetadataEntries says where they end.
func marshalBlock(b []byte, prev uint64, es []rawEntry) {
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[bPrev:], prev)
	le.PutUint32(b[bValid:], uint32(len(es)))
	le.PutUint32(b[bChecksum:], checksum(b[:blockHeaderSize], bChecksum))
	for i, e := range es {
		p := b[blockHeaderSize+i*entrySize:][:entrySize]
		le.PutUint64(p[eByteOffset:], e.Off)
		le.PutUint32(p[eDataLength:], e.Len)
		le.PutUint32(p[eTimeStamp:], e.Time)
		p[eOp] = opWrite
		le.PutUint32(p[eDataChecksum:], e.DataSum)
		p[eLocation] = 0
		le.PutUint32(p[eChecksum:], checksum(p, eChecksum))
	}
}

// checksum is the one's complement of the byte sum of b, leaving out the
// 4-byte checksum field at skip (the VHD footer rule).
func checksum(b []byte, skip int) uint32 {
	return ^(byteSum(b) - byteSum(b[skip:skip+4]))
}

// GUIDs are stored the way Windows lays out a GUID struct (MS-DTYP): Data1
// (4 bytes), Data2 and Data3 (2 bytes each) little-endian, Data4 (8 bytes)
// as is. uuid.UUID holds the RFC 4122 (big-endian) order, so the first three
// groups are byte-swapped on the way in and out; the text form then matches
// what Windows prints for the same GUID.
func putGUID(b []byte, u uuid.UUID) {
	b[0], b[1], b[2], b[3] = u[3], u[2], u[1], u[0]
	b[4], b[5] = u[5], u[4]
	b[6], b[7] = u[7], u[6]
	copy(b[8:16], u[8:16])
}

func getGUID(b []byte) uuid.UUID {
	var u uuid.UUID
	u[0], u[1], u[2], u[3] = b[3], b[2], b[1], b[0]
	u[4], u[5] = b[5], b[4]
	u[6], u[7] = b[7], b[6]
	copy(u[8:16], b[8:16])
	return u
}

// stamp converts t to seconds since 2000-01-01 UTC, clamped to the field.
func stamp(t time.Time) uint32 {
	s := t.Unix() - epoch2000
	switch {
	case s < 0:
		return 0
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

func unstamp(v uint32) time.Time { return time.Unix(epoch2000+int64(v), 0).UTC() }
