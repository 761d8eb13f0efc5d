package vhd

import (
	"encoding/binary"
	"time"
)

var be = binary.BigEndian

// Layout constants from Microsoft's "Virtual Hard Disk Image Format
// Specification" (2006). All multi-byte fields are big-endian.
const (
	sectorSize = 512
	footerSize = 512
	headerSize = 1024

	footerCookie = "conectix"
	headerCookie = "cxsparse"

	// Footer field offsets.
	fFeatures   = 8
	fVersion    = 12
	fDataOffset = 16
	fTimestamp  = 24
	fCreatorApp = 28
	fCreatorVer = 32
	fCreatorOS  = 36
	fOrigSize   = 40
	fCurSize    = 48
	fGeometry   = 56
	fDiskType   = 60
	fChecksum   = 64
	fUniqueID   = 68

	diskFixed        = 2
	diskDynamic      = 3
	diskDifferencing = 4

	noDataOffset = ^uint64(0)
)

// vhdEpoch is the origin of every VHD time stamp.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// footer is the parsed 512-byte footer. raw keeps the bytes so the footer
// can be rewritten unchanged at a new end of file.
type footer struct {
	raw        [footerSize]byte
	dataOffset uint64
	timestamp  uint32
	creator    string
	curSize    uint64
	diskType   uint32
	id         [16]byte
}

// checksum is the one's complement of the byte sum, skipping the 4-byte
// checksum field at csOff.
func checksum(b []byte, csOff int) uint32 {
	var sum uint32
	for i, c := range b {
		if i >= csOff && i < csOff+4 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// parseFooter checks cookie, checksum and disk type of the footer at base.
func parseFooter(b []byte, path string, base int64) (footer, error) {
	var f footer
	copy(f.raw[:], b)
	if string(b[:8]) != footerCookie {
		return f, formatErr(path, "footer cookie", base, 0, ErrBadCookie,
			"want %q, have %q", footerCookie, printable(b[:8]))
	}
	f.dataOffset = be.Uint64(b[fDataOffset:])
	f.timestamp = be.Uint32(b[fTimestamp:])
	f.creator = printable(b[fCreatorApp : fCreatorApp+4])
	f.curSize = be.Uint64(b[fCurSize:])
	f.diskType = be.Uint32(b[fDiskType:])
	copy(f.id[:], b[fUniqueID:])
	// Fields are parsed before the checksum is checked so that Inspect can
	// show what a damaged footer claims.
	want, have := checksum(b[:footerSize], fChecksum), be.Uint32(b[fChecksum:])
	if want != have {
		return f, formatErr(path, "footer checksum", base, fChecksum, ErrBadChecksum,
			"want 0x%08x, have 0x%08x", want, have)
	}
	switch f.diskType {
	case diskFixed, diskDynamic, diskDifferencing:
	default:
		return f, formatErr(path, "footer disk type", base, fDiskType, ErrUnsupported,
			"have %d, want 2 (fixed), 3 (dynamic) or 4 (differencing)", f.diskType)
	}
	// Sector-aligned sizes only: every structure and block map is in sectors.
	if f.curSize%sectorSize != 0 || f.curSize > maxVirtualSize {
		return f, formatErr(path, "footer current size", base, fCurSize, ErrSizeMismatch,
			"have %d, want a multiple of 512 up to %d", f.curSize, int64(maxVirtualSize))
	}
	return f, nil
}

// maxVirtualSize bounds any declared size far above real VHDs (2040 GiB for
// dynamic ones; Azure fixed ones reach 32 TiB) and keeps offsets in int64.
const maxVirtualSize = 1 << 50

// printable keeps a field readable in an error message.
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}

// geometry returns the CHS value the spec's algorithm (appendix
// "CHS Calculation") derives from a size: cylinders<<16 | heads<<8 | sectors.
func geometry(size int64) uint32 {
	total := size / sectorSize
	if total > 65535*16*255 {
		total = 65535 * 16 * 255
	}
	var spt, heads, cth int64
	if total >= 65535*16*63 {
		spt, heads = 255, 16
		cth = total / spt
	} else {
		spt = 17
		cth = total / spt
		heads = (cth + 1023) / 1024
		if heads < 4 {
			heads = 4
		}
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = total / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = total / spt
		}
	}
	cyl := cth / heads
	return uint32(cyl)<<16 | uint32(heads)<<8 | uint32(spt)
}

// vhdTime converts t to seconds since 2000-01-01 UTC, clamped to the field.
func vhdTime(t time.Time) uint32 {
	s := t.Sub(vhdEpoch) / time.Second
	if s < 0 {
		return 0
	}
	if s > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(s)
}

// FixedFooter returns the 512-byte footer of a fixed VHD of virtual size
// size (which the caller keeps a multiple of 512; Azure also wants 1 MiB).
// It names "win " as creator application so qemu and Hyper-V take the size
// from the footer rather than from the CHS geometry.
func FixedFooter(size int64, id [16]byte, created time.Time) []byte {
	b := make([]byte, footerSize)
	copy(b, footerCookie)
	be.PutUint32(b[fFeatures:], 2) // "reserved" bit, always set
	be.PutUint32(b[fVersion:], 0x00010000)
	be.PutUint64(b[fDataOffset:], noDataOffset)
	be.PutUint32(b[fTimestamp:], vhdTime(created))
	copy(b[fCreatorApp:], "win ")
	be.PutUint32(b[fCreatorVer:], 0x000a0000)
	copy(b[fCreatorOS:], "Wi2k")
	be.PutUint64(b[fOrigSize:], uint64(size))
	be.PutUint64(b[fCurSize:], uint64(size))
	be.PutUint32(b[fGeometry:], geometry(size))
	be.PutUint32(b[fDiskType:], diskFixed)
	copy(b[fUniqueID:], id[:])
	be.PutUint32(b[fChecksum:], checksum(b, fChecksum))
	return b
}
