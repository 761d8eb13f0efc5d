package vhd

import (
	"strconv"
	"unicode/utf16"
)

// Dynamic header field offsets and limits.
const (
	hTableOffset = 16
	hMaxEntries  = 28
	hBlockSize   = 32
	hChecksum    = 36
	hParentID    = 40
	hParentTime  = 56
	hParentName  = 64
	hLocators    = 576
	locatorSize  = 24
	numLocators  = 8

	// MinBlockSize and MaxBlockSize bound the dynamic header's block size
	// (a power of two). Real VHDs use 512 KiB or 2 MiB; the bounds keep the
	// per-block bitmap and a single block read small.
	MinBlockSize = 512
	MaxBlockSize = 256 << 20

	batUnused = 0xFFFFFFFF

	// maxLocatorLen bounds a parent locator's path (Windows allows 32767
	// UTF-16 units).
	maxLocatorLen = 64 << 10
)

type dynHeader struct {
	off         int64
	tableOffset int64
	maxEntries  int64
	parentID    [16]byte
	parentTime  uint32
	parentName  string
	locators    []locator
}

// locator is one parent locator entry that points at a usable path.
type locator struct {
	code string // "W2ru" (relative) or "W2ku" (absolute), UTF-16LE data
	path string
}

// loadDynamic reads the dynamic header and the BAT and checks every
// allocated block fits the data area. Allocations are bounded by fileSize:
// the BAT must lie inside the file, so it holds at most fileSize/4 entries.
func (d *Disk) loadDynamic(fileSize int64, info *Info) error {
	// A structure past EOF means the file was cut short; when the tail
	// footer is intact it means a bad pointer instead.
	pastEOF := ErrBATPastEOF
	if d.tailMissing {
		pastEOF = ErrTruncated
	}
	footerBase := d.footerOff
	if d.tailMissing {
		footerBase = 0
	}
	if d.ft.dataOffset < footerSize || d.ft.dataOffset > uint64(d.footerOff) ||
		int64(d.ft.dataOffset)+headerSize > d.footerOff {
		return formatErr(d.path, "footer data offset", footerBase, fDataOffset, ErrTruncated,
			"dynamic header at %d does not fit the %d-byte data area", d.ft.dataOffset, d.footerOff)
	}
	off := int64(d.ft.dataOffset)
	b := make([]byte, headerSize)
	if err := d.pread(b, off, "dynamic header"); err != nil {
		return err
	}
	if string(b[:8]) != headerCookie {
		return formatErr(d.path, "dynamic header cookie", off, 0, ErrBadCookie,
			"want %q, have %q", headerCookie, printable(b[:8]))
	}
	if want, have := checksum(b, hChecksum), be.Uint32(b[hChecksum:]); want != have {
		return formatErr(d.path, "dynamic header checksum", off, hChecksum, ErrBadChecksum,
			"want 0x%08x, have 0x%08x", want, have)
	}
	h := dynHeader{off: off, maxEntries: int64(be.Uint32(b[hMaxEntries:])),
		parentTime: be.Uint32(b[hParentTime:])}
	copy(h.parentID[:], b[hParentID:])
	h.parentName = decodeUTF16(b[hParentName:hLocators], false)
	if info != nil && d.typ == TypeDifferencing {
		info.ParentUUID = uuidString(h.parentID)
	}

	bs := int64(be.Uint32(b[hBlockSize:]))
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return formatErr(d.path, "dynamic header block size", off, hBlockSize, ErrBlockSize,
			"have %d, want a power of two from %d to %d", bs, MinBlockSize, MaxBlockSize)
	}
	d.bs = bs
	d.bmSize = ((bs/sectorSize+7)/8 + sectorSize - 1) / sectorSize * sectorSize // one bit per sector, in whole sectors

	need := (d.size + bs - 1) / bs
	if need > h.maxEntries {
		return formatErr(d.path, "dynamic header max table entries", off, hMaxEntries, ErrSizeMismatch,
			"%d entries of %d bytes cannot hold the footer's %d-byte disk", h.maxEntries, bs, d.size)
	}
	tOff := be.Uint64(b[hTableOffset:])
	if tOff < footerSize || tOff > uint64(d.footerOff) || int64(tOff)+h.maxEntries*4 > d.footerOff {
		return formatErr(d.path, "dynamic header table offset", off, hTableOffset, ErrTruncated,
			"BAT of %d entries at %d does not fit the %d-byte data area", h.maxEntries, tOff, d.footerOff)
	}
	h.tableOffset = int64(tOff)
	h.locators = d.readLocators(b[hLocators:hLocators+numLocators*locatorSize], fileSize)
	d.hdr = h

	raw := make([]byte, need*4) // need <= maxEntries <= fileSize/4
	if err := d.pread(raw, h.tableOffset, "BAT"); err != nil {
		return err
	}
	d.bat = make([]uint32, need)
	tableEnd := h.tableOffset + h.maxEntries*4
	for i := range d.bat {
		e := be.Uint32(raw[i*4:])
		d.bat[i] = e
		if e == batUnused {
			continue
		}
		start, end := int64(e)*sectorSize, int64(e)*sectorSize+d.bmSize+bs
		field := "BAT entry " + strconv.Itoa(i)
		switch {
		case end > d.footerOff:
			return formatErr(d.path, field, h.tableOffset, int64(i)*4, pastEOF,
				"block at %d..%d ends past the data area's end %d", start, end, d.footerOff)
		case start < footerSize || overlaps(start, end, off, off+headerSize) ||
			overlaps(start, end, h.tableOffset, tableEnd):
			return formatErr(d.path, field, h.tableOffset, int64(i)*4, ErrBATOverlap,
				"block at %d..%d overlaps the footer copy, dynamic header (%d) or BAT (%d..%d)",
				start, end, off, h.tableOffset, tableEnd)
		}
	}
	return nil
}

func overlaps(a0, a1, b0, b1 int64) bool { return a0 < b1 && b0 < a1 }

// readLocators keeps the Windows locators whose data lies inside the file;
// a damaged locator is skipped, not fatal, as other locators may still work.
func (d *Disk) readLocators(b []byte, fileSize int64) []locator {
	var out []locator
	for i := 0; i < numLocators; i++ {
		e := b[i*locatorSize:]
		code := string(e[:4])
		if code != "W2ru" && code != "W2ku" {
			continue
		}
		n, off := int64(be.Uint32(e[8:])), be.Uint64(e[16:])
		if n <= 0 || n > maxLocatorLen || off > uint64(fileSize) || int64(off)+n > fileSize {
			continue
		}
		buf := make([]byte, n)
		if _, err := d.f.ReadAt(buf, int64(off)); err != nil {
			continue
		}
		if p := decodeUTF16(buf, true); p != "" {
			out = append(out, locator{code: code, path: p})
		}
	}
	return out
}

// decodeUTF16 decodes up to the first NUL; the locators are little-endian,
// the header's parent name big-endian.
func decodeUTF16(b []byte, little bool) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		v := uint16(b[i])<<8 | uint16(b[i+1])
		if little {
			v = uint16(b[i+1])<<8 | uint16(b[i])
		}
		if v == 0 {
			break
		}
		u = append(u, v)
	}
	return string(utf16.Decode(u))
}
