package vhdx

import (
	"testing"

	"github.com/google/uuid"
)

var unknownGUID = uuid.MustParse("12345678-1234-1234-1234-123456789abc")

func TestRegionTable(t *testing.T) {
	flip := func(off int64) func(*sparse) { return func(s *sparse) { s.put(off, []byte{0xee}) } }
	for _, c := range []struct {
		name     string
		edit     func(*layout)
		corrupt  func(*sparse)
		wantErr  error
		wantText string
	}{
		{name: "signature bad, copy used", corrupt: flip(regionTable1Offset)},
		{name: "checksum bad, copy used", corrupt: flip(regionTable1Offset + 60000)},
		{name: "bad, no copy", edit: func(l *layout) { l.rtCopy = false }, corrupt: flip(regionTable1Offset + 5),
			wantErr: ErrCorrupt, wantText: "region table at offset 196608: checksum 0x"},
		{name: "bad copy named", edit: func(l *layout) { l.rtCopy = false }, corrupt: flip(regionTable1Offset),
			wantErr: ErrCorrupt, wantText: `; the copy at offset 262144 is bad too: region table copy: signature "\x00\x00\x00\x00"`},
		// An intact first table is authoritative: its error stands even
		// though the copy (the default layout's) is fine.
		{name: "intact but wrong, copy not used", wantErr: ErrCorrupt, wantText: "no metadata region",
			corrupt: func(s *sparse) { s.put(regionTable1Offset, regionBlock(baseLayout().regions[:1])) }},
		{name: "no BAT", edit: func(l *layout) { l.regions = l.regions[1:] }, wantErr: ErrCorrupt, wantText: "no BAT region"},
		{name: "zero-length metadata", edit: func(l *layout) { l.regions[1].length = 0 }, wantErr: ErrCorrupt,
			wantText: "no metadata region (8b7ca206-4790-4b9a-b8fe-575f050f886e) of non-zero length"},
		{name: "unknown optional region", edit: func(l *layout) {
			l.regions = append(l.regions, regionEntry{id: unknownGUID, off: 5 * mib, length: mib})
			l.size = 6 * mib
		}},
		{name: "unknown required region", wantErr: ErrUnsupported, wantText: "entry 2 (region 12345678-1234-1234-1234-123456789abc) is marked required",
			edit: func(l *layout) {
				l.regions = append(l.regions, regionEntry{id: unknownGUID, off: 5 * mib, length: mib, required: true})
				l.size = 6 * mib
			}},
		{name: "duplicate", edit: func(l *layout) { l.regions = append(l.regions, l.regions[0]) }, wantErr: ErrCorrupt,
			wantText: "entry 2 (BAT region) appears twice"},
		{name: "unaligned offset", edit: func(l *layout) { l.regions[0].off = 3*mib + 4096 }, wantErr: ErrCorrupt,
			wantText: "FileOffset 3149824"},
		{name: "in header section", edit: func(l *layout) { l.regions[0].off = 0 }, wantErr: ErrCorrupt, wantText: "FileOffset 0"},
		{name: "unaligned length", edit: func(l *layout) { l.regions[0].length = 4096 }, wantErr: ErrCorrupt, wantText: "Length 4096"},
		{name: "past end", edit: func(l *layout) { l.regions[0].off = 4 * mib }, wantErr: ErrCorrupt,
			wantText: "entry 0 (BAT region): 1048576 bytes at offset 4194304 end past the end of the 4194304-byte file"},
		{name: "offset huge", edit: func(l *layout) { l.regions[0].off = 1 << 63 }, wantErr: ErrCorrupt, wantText: "end past the end"},
		{name: "overlaps log", edit: func(l *layout) { l.regions[0].off = mib }, wantErr: ErrCorrupt,
			wantText: "entry 0 (BAT region) overlaps the log"},
		{name: "overlaps metadata", edit: func(l *layout) { l.regions[0].off, l.regions[0].length = 2*mib, 2*mib },
			wantErr: ErrCorrupt, wantText: "entry 1 (metadata region) overlaps the BAT region"},
		{name: "count over 2047", wantErr: ErrCorrupt, wantText: "EntryCount 2048",
			corrupt: func(s *sparse) {
				b := regionBlock(baseLayout().regions)
				b[8], b[9] = 0x00, 0x08
				putChecksum(b, 4)
				s.put(regionTable1Offset, b)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := baseLayout()
			if c.edit != nil {
				c.edit(l)
			}
			s := l.build()
			if c.corrupt != nil {
				c.corrupt(s)
			}
			info, err := Parse(s, s.size, "t.vhdx")
			checkErr(t, err, c.wantErr, c.wantText)
			if err == nil && (info.VirtualSize != 64*mib || info.LogicalSectorSize != 512) {
				t.Fatalf("Parse = %+v", info)
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	item := func(l *layout, id uuid.UUID) *itemEntry {
		for i := range l.items {
			if l.items[i].id == id {
				return &l.items[i]
			}
		}
		t.Fatalf("no item %s", id)
		return nil
	}
	for _, c := range []struct {
		name       string
		edit       func(*layout)
		wantErr    error
		wantText   string
		wantSize   int64
		wantSector uint32
	}{
		{name: "base", wantSize: 64 * mib, wantSector: 512},
		{name: "4K sectors", edit: func(l *layout) { item(l, itemLogicalSectorSize).data = le32(4096) },
			wantSize: 64 * mib, wantSector: 4096},
		{name: "64 TiB", edit: func(l *layout) { item(l, itemVirtualDiskSize).data = le64(64 << 40) },
			wantSize: 64 << 40, wantSector: 512},
		{name: "size 0", edit: func(l *layout) { item(l, itemVirtualDiskSize).data = le64(0) }, wantSector: 512},
		{name: "unknown optional items", edit: func(l *layout) {
			l.items = append(l.items, itemEntry{id: unknownGUID, data: []byte{1}},
				itemEntry{id: unknownGUID, user: true, data: []byte{2}},
				itemEntry{id: itemVirtualDiskSize, user: true, data: le64(1)}) // a user item is not the system one
		}, wantSize: 64 * mib, wantSector: 512},
		{name: "empty item", edit: func(l *layout) { l.items = append(l.items, itemEntry{id: unknownGUID}) },
			wantSize: 64 * mib, wantSector: 512},
		{name: "no size", edit: func(l *layout) { l.items = l.items[2:] }, wantErr: ErrCorrupt,
			wantText: "metadata table at offset 2097152: no Virtual Disk Size item (2fa54224-cd1b-4876-b211-5dbed83bf4b8) listed"},
		{name: "size only as user item", edit: func(l *layout) { it := item(l, itemVirtualDiskSize); it.user, it.required = true, false },
			wantErr: ErrCorrupt, wantText: "no Virtual Disk Size item"},
		{name: "no sector size", edit: func(l *layout) { l.items = l.items[:3] }, wantErr: ErrCorrupt,
			wantText: "no Logical Sector Size item (8141bf1d-a96f-4709-ba47-f233a8faab5f)"},
		{name: "sector 1024", edit: func(l *layout) { item(l, itemLogicalSectorSize).data = le32(1024) },
			wantErr: ErrCorrupt, wantText: "Logical Sector Size item at offset 2174976: 1024 bytes, want 512 or 4096"},
		{name: "size not whole sectors", edit: func(l *layout) { item(l, itemVirtualDiskSize).data = le64(64*mib + 256) },
			wantErr: ErrCorrupt, wantText: "67109120 bytes, want a multiple of the 512-byte logical sector"},
		{name: "size over 64 TiB", edit: func(l *layout) { item(l, itemVirtualDiskSize).data = le64(64<<40 + 512) },
			wantErr: ErrCorrupt, wantText: "at most 64 TiB"},
		{name: "size item short", edit: func(l *layout) { item(l, itemVirtualDiskSize).data = le32(7) },
			wantErr: ErrCorrupt, wantText: "Virtual Disk Size item at offset 2166784: Length 4, want 8"},
		{name: "unknown required item", edit: func(l *layout) {
			l.items = append(l.items, itemEntry{id: unknownGUID, required: true, data: []byte{1}})
		}, wantErr: ErrUnsupported, wantText: "entry 5 (item 12345678-1234-1234-1234-123456789abc) is marked required"},
		{name: "duplicate", edit: func(l *layout) { l.items = append(l.items, l.items[1]) },
			wantErr: ErrCorrupt, wantText: "entry 5 (Virtual Disk Size item) appears twice"},
		{name: "item in table", wantErr: ErrCorrupt, wantText: "8 bytes at Offset 4096 must lie between 64 KiB",
			edit: func(l *layout) { rawItems(l); l.items[1].off = 4096 }},
		{name: "item past region", wantErr: ErrCorrupt, wantText: "at Offset 1048572",
			edit: func(l *layout) { rawItems(l); l.items[1].off = mib - 4 }},
		{name: "item over 1 MiB", wantErr: ErrCorrupt, wantText: "Length 1048577 is over 1 MiB",
			edit: func(l *layout) { rawItems(l); l.items[0].length = mib + 1 }},
		{name: "empty item with offset", wantErr: ErrCorrupt, wantText: "Length 0 needs Offset 0, have 65536",
			edit: func(l *layout) { rawItems(l); l.items[0].length = 0 }},
		{name: "signature", edit: func(l *layout) { l.metaOff = 3 * mib }, wantErr: ErrCorrupt,
			wantText: `metadata table at offset 2097152: signature "\x00\x00\x00\x00\x00\x00\x00\x00", want "metadata"`},
		{name: "count over 2047", edit: func(l *layout) { l.mdCount = 2048 }, wantErr: ErrCorrupt,
			wantText: "EntryCount 2048"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := baseLayout()
			if c.edit != nil {
				c.edit(l)
			}
			info, err := l.parse()
			checkErr(t, err, c.wantErr, c.wantText)
			if err == nil && (info.VirtualSize != c.wantSize || info.LogicalSectorSize != c.wantSector) {
				t.Fatalf("size %d sector %d, want %d, %d", info.VirtualSize, info.LogicalSectorSize, c.wantSize, c.wantSector)
			}
		})
	}
}

// rawItems fixes each item's offset and length as metadataBlock would, so
// a test can then change them.
func rawItems(l *layout) {
	l.rawItems = true
	for i := range l.items {
		l.items[i].off, l.items[i].length = uint32(metadataTableSize+i*4*kib), uint32(len(l.items[i].data))
	}
}
