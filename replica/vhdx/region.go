package vhdx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Region table ([MS-VHDX] 2.2.3): a 64 KiB table at 192 KiB, copied at
// 256 KiB. Header: "regi", CRC-32C of the 64 KiB with the checksum field
// zeroed, EntryCount (at most 2047), reserved; then 32-byte entries: GUID,
// FileOffset uint64, Length uint32, flags uint32 (bit 0 Required).
const (
	regionTable1Offset = 192 * kib
	regionTable2Offset = 256 * kib
	regionTableSize    = 64 * kib
	regionHeaderSize   = 16
	regionEntrySize    = 32
	maxRegionEntries   = 2047
)

// Metadata region ([MS-VHDX] 2.6): a table of at most 64 KiB at the start
// of the region. Header: "metadata", reserved uint16, EntryCount uint16 (at
// most 2047), 20 reserved bytes; then 32-byte entries: ItemId GUID, Offset
// uint32 (from the region start, at least 64 KiB), Length uint32 (at most
// 1 MiB), flags uint32 (bit 0 IsUser, 1 IsVirtualDisk, 2 IsRequired),
// reserved uint32.
const (
	metadataTableSize   = 64 * kib
	metadataHeaderSize  = 32
	metadataEntrySize   = 32
	maxMetadataEntries  = 2047
	maxMetadataItemSize = 1 * mib

	maxVirtualSize = 64 << 40 // 64 TiB ([MS-VHDX] 2.6.2.2)
)

var (
	regionSignature   = []byte("regi")
	metadataSignature = []byte("metadata")
)

// Known regions ([MS-VHDX] 2.2.3.2) and system metadata items (2.6.2),
// by the GUIDs the spec prints.
var (
	regionBAT      = uuid.MustParse("2DC27766-F623-4200-9D64-115E9BFD4A08")
	regionMetadata = uuid.MustParse("8B7CA206-4790-4B9A-B8FE-575F050F886E")

	itemFileParameters     = uuid.MustParse("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	itemVirtualDiskSize    = uuid.MustParse("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	itemVirtualDiskID      = uuid.MustParse("BECA12AB-B2E6-4523-93EF-C309E000C746")
	itemLogicalSectorSize  = uuid.MustParse("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	itemPhysicalSectorSize = uuid.MustParse("CDA348C7-445D-4471-9CC9-E9885251C556")
	itemParentLocator      = uuid.MustParse("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")

	knownRegions = map[uuid.UUID]string{regionBAT: "BAT", regionMetadata: "metadata"}
	knownItems   = map[uuid.UUID]string{
		itemFileParameters: "File Parameters", itemVirtualDiskSize: "Virtual Disk Size",
		itemVirtualDiskID: "Virtual Disk ID", itemLogicalSectorSize: "Logical Sector Size",
		itemPhysicalSectorSize: "Physical Sector Size", itemParentLocator: "Parent Locator",
	}
)

// span is a byte range of the file.
type span struct {
	name   string
	off    uint64
	length uint64
}

func (a span) overlaps(b span) bool {
	return a.length > 0 && b.length > 0 && a.off < b.off+b.length && b.off < a.off+a.length
}

// regions are the two regions Parse needs from the region table.
type regions struct{ bat, meta span }

// regionTable returns the BAT and metadata regions from the region table at
// 192 KiB. The copy at 256 KiB is used only when the first table fails its
// signature or checksum (a torn write); a first table that is intact but
// wrong is reported as it is.
func (p *parser) regionTable(h header) (regions, error) {
	rs, intact, err := p.readRegionTable(regionTable1Offset, "region table", h)
	if err == nil || intact {
		return rs, err
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		return regions{}, err
	}
	rs, _, err2 := p.readRegionTable(regionTable2Offset, "region table copy", h)
	if err2 == nil {
		return rs, nil
	}
	if fe2 := (*FormatError)(nil); errors.As(err2, &fe2) {
		fe.Detail += fmt.Sprintf("; the copy at offset %d is bad too: %s: %s", regionTable2Offset, fe2.Field, fe2.Detail)
	}
	return regions{}, fe
}

// readRegionTable reads and checks one region table copy. intact reports
// that its signature and checksum held.
func (p *parser) readRegionTable(off int64, field string, h header) (rs regions, intact bool, err error) {
	b, err := p.read(off, regionTableSize, field)
	if err != nil {
		return regions{}, false, err
	}
	if !bytes.Equal(b[:4], regionSignature) {
		return regions{}, false, formatErr(p.path, field, off, ErrCorrupt, "signature %q, want \"regi\"", b[:4])
	}
	if stored, computed := binary.LittleEndian.Uint32(b[4:]), checksum(b, 4); stored != computed {
		return regions{}, false, formatErr(p.path, field, off, ErrCorrupt, "checksum 0x%08x, computed 0x%08x", stored, computed)
	}
	n := binary.LittleEndian.Uint32(b[8:])
	if n > maxRegionEntries {
		return regions{}, true, formatErr(p.path, field, off, ErrCorrupt, "EntryCount %d, at most %d allowed", n, maxRegionEntries)
	}
	spans := []span{{name: "log", off: h.logOffset, length: uint64(h.logLength)}}
	seen := make(map[uuid.UUID]bool, n)
	var bat, meta span
	for i := 0; i < int(n); i++ {
		e := b[regionHeaderSize+i*regionEntrySize:]
		id := guidAt(e)
		s := span{off: binary.LittleEndian.Uint64(e[16:]), length: uint64(binary.LittleEndian.Uint32(e[24:]))}
		required := binary.LittleEndian.Uint32(e[28:])&1 != 0
		s.name = fmt.Sprintf("region %s", id)
		if name, ok := knownRegions[id]; ok {
			s.name = name + " region"
		}
		at := fmt.Sprintf("entry %d (%s)", i, s.name)
		switch {
		case seen[id]:
			return regions{}, true, formatErr(p.path, field, off, ErrCorrupt, "%s appears twice", at)
		case s.off < mib || s.off%mib != 0 || s.length%mib != 0:
			return regions{}, true, formatErr(p.path, field, off, ErrCorrupt,
				"%s: FileOffset %d and Length %d must be multiples of 1 MiB, FileOffset at least 1 MiB", at, s.off, s.length)
		case s.off > uint64(p.size) || s.length > uint64(p.size)-s.off:
			return regions{}, true, formatErr(p.path, field, off, ErrCorrupt,
				"%s: %d bytes at offset %d end past the end of the %d-byte file", at, s.length, s.off, p.size)
		case required && knownRegions[id] == "":
			return regions{}, true, formatErr(p.path, field, off, ErrUnsupported, "%s is marked required", at)
		}
		for _, o := range spans {
			if s.overlaps(o) {
				return regions{}, true, formatErr(p.path, field, off, ErrCorrupt, "%s overlaps the %s", at, o.name)
			}
		}
		seen[id] = true
		spans = append(spans, s)
		switch id {
		case regionBAT:
			bat = s
		case regionMetadata:
			meta = s
		}
	}
	switch {
	case bat.length == 0:
		return regions{}, true, formatErr(p.path, field, off, ErrCorrupt, "no BAT region (%s) of non-zero length listed", regionBAT)
	case meta.length == 0:
		return regions{}, true, formatErr(p.path, field, off, ErrCorrupt, "no metadata region (%s) of non-zero length listed", regionMetadata)
	}
	return regions{bat: bat, meta: meta}, true, nil
}

// metadata reads the metadata table of the region md and sets info's
// VirtualSize, LogicalSectorSize and File Parameters fields from their
// items.
func (p *parser) metadata(md span, info *Info) error {
	field := "metadata table"
	base := int64(md.off)
	b, err := p.read(base, metadataTableSize, field)
	if err != nil {
		return err
	}
	if !bytes.Equal(b[:8], metadataSignature) {
		return formatErr(p.path, field, base, ErrCorrupt, "signature %q, want \"metadata\"", b[:8])
	}
	n := int(binary.LittleEndian.Uint16(b[10:]))
	if n > maxMetadataEntries {
		return formatErr(p.path, field, base, ErrCorrupt, "EntryCount %d, at most %d allowed", n, maxMetadataEntries)
	}
	type key struct {
		id   uuid.UUID
		user bool
	}
	seen := make(map[key]bool, n)
	items := map[uuid.UUID]span{}
	for i := 0; i < n; i++ {
		e := b[metadataHeaderSize+i*metadataEntrySize:]
		id := guidAt(e)
		s := span{off: uint64(binary.LittleEndian.Uint32(e[16:])), length: uint64(binary.LittleEndian.Uint32(e[20:]))}
		flags := binary.LittleEndian.Uint32(e[24:])
		user, required := flags&1 != 0, flags&4 != 0
		s.name = fmt.Sprintf("item %s", id)
		if name, ok := knownItems[id]; ok && !user {
			s.name = name + " item"
		}
		at := fmt.Sprintf("entry %d (%s)", i, s.name)
		switch {
		case seen[key{id, user}]:
			return formatErr(p.path, field, base, ErrCorrupt, "%s appears twice", at)
		case s.length > maxMetadataItemSize:
			return formatErr(p.path, field, base, ErrCorrupt, "%s: Length %d is over 1 MiB", at, s.length)
		case s.length == 0 && s.off != 0:
			return formatErr(p.path, field, base, ErrCorrupt, "%s: Length 0 needs Offset 0, have %d", at, s.off)
		case s.length > 0 && (s.off < metadataTableSize || s.off+s.length > md.length):
			return formatErr(p.path, field, base, ErrCorrupt,
				"%s: %d bytes at Offset %d must lie between 64 KiB and the region's end at %d", at, s.length, s.off, md.length)
		case required && (user || knownItems[id] == ""):
			return formatErr(p.path, field, base, ErrUnsupported, "%s is marked required", at)
		}
		seen[key{id, user}] = true
		if !user {
			items[id] = s
		}
	}
	v, err := p.item(md, items, itemVirtualDiskSize, 8)
	if err != nil {
		return err
	}
	ls, err := p.item(md, items, itemLogicalSectorSize, 4)
	if err != nil {
		return err
	}
	size := binary.LittleEndian.Uint64(v)
	sector := binary.LittleEndian.Uint32(ls)
	switch {
	case sector != 512 && sector != 4096:
		return formatErr(p.path, "Logical Sector Size item", base+int64(items[itemLogicalSectorSize].off),
			ErrCorrupt, "%d bytes, want 512 or 4096", sector)
	case size > maxVirtualSize || size%uint64(sector) != 0:
		return formatErr(p.path, "Virtual Disk Size item", base+int64(items[itemVirtualDiskSize].off),
			ErrCorrupt, "%d bytes, want a multiple of the %d-byte logical sector, at most 64 TiB", size, sector)
	}
	info.VirtualSize, info.LogicalSectorSize = int64(size), sector
	return p.fileParameters(md, items, info)
}

// fileParameters reads the File Parameters item ([MS-VHDX] 2.6.2.1):
// BlockSize uint32, then flags uint32 (bit 0 LeaveBlocksAllocated, bit 1
// HasParent, the rest reserved and ignored).
func (p *parser) fileParameters(md span, items map[uuid.UUID]span, info *Info) error {
	b, err := p.item(md, items, itemFileParameters, 8)
	if err != nil {
		return err
	}
	bs, flags := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
	if !validBlockSize(bs) {
		return formatErr(p.path, "File Parameters item", int64(md.off+items[itemFileParameters].off), ErrCorrupt,
			"BlockSize %d, want a power of 2 from 1 MiB to 256 MiB", bs)
	}
	info.BlockSize, info.LeaveBlocksAllocated, info.HasParent = bs, flags&1 != 0, flags&2 != 0
	return nil
}

// item reads the system metadata item id, which must be want bytes long.
func (p *parser) item(md span, items map[uuid.UUID]span, id uuid.UUID, want int) ([]byte, error) {
	s, ok := items[id]
	name := knownItems[id] + " item"
	if !ok {
		return nil, formatErr(p.path, "metadata table", int64(md.off), ErrCorrupt, "no %s (%s) listed", name, id)
	}
	if s.length != uint64(want) {
		return nil, formatErr(p.path, name, int64(md.off+s.off), ErrCorrupt, "Length %d, want %d", s.length, want)
	}
	return p.read(int64(md.off+s.off), want, name)
}
