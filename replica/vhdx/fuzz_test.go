package vhdx

import (
	"errors"
	"runtime"
	"testing"
)

// fuzzMetaOff is where the fuzz harness puts the metadata region: where
// the seed's region table says it is.
const fuzzMetaOff = 2 * mib

// fuzzMaxSize caps the file size the fuzzer picks: the log, which Parse
// scans 4 KiB at a time when LogGuid is set, lies inside the file.
const fuzzMaxSize = 64 * mib

// FuzzRead: Parse never panics, returns one of the package's sentinels on
// failure, returns only values the spec allows on success, and allocates
// a bounded amount whatever the file size or the structures claim.
//
// Each argument is one structure, placed at its offset in a sparse file of
// size bytes (negative allowed, at most fuzzMaxSize): the file type identifier at 0, headers at 64 KiB
// and 128 KiB, the region table at 192 KiB (and its copy at 256 KiB), the
// metadata table at 2 MiB and its items from 2 MiB + 64 KiB. With fix set
// the harness recomputes the header and region table checksums, so the
// fuzzer gets past them.
//
//	go test -run '^$' -fuzz FuzzRead -fuzztime 20s ./replica/vhdx
func FuzzRead(f *testing.F) {
	seed := fuzzSeed()
	f.Add(seed.fti, seed.h1, seed.h2, seed.rt, seed.table, seed.items, seed.size, true)
	full := fuzzSeed()
	full.h1, full.h2, full.rt = headerBlock(baseLayout().headers[0]), headerBlock(baseLayout().headers[1]), regionBlock(baseLayout().regions)
	f.Add(full.fti, full.h1, full.h2, full.rt, full.table, full.items, full.size, false)
	f.Add(seed.fti, seed.h1, seed.h2, seed.rt, seed.table, seed.items, int64(2*mib+100), true)
	f.Add(seed.fti[:8], []byte("head"), []byte("head"), []byte("regi"), []byte("metadata"), []byte{}, int64(mib), true)
	f.Add([]byte("QFI\xfb"), []byte{}, []byte{}, []byte{}, []byte{}, []byte{}, int64(-1), false)

	f.Fuzz(func(t *testing.T, fti, h1, h2, rt, table, items []byte, size int64, fix bool) {
		s := fuzzInput{fti, h1, h2, rt, table, items, size}.image(fix)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		info, err := Parse(s, s.size, "fuzz.vhdx")
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Fatalf("Parse allocated %d bytes", grew)
		}
		checkInfo(t, info, err)
		if err == nil {
			var exts []Extent
			err = ScanExtents(s, s.size, info, func(e Extent) error { exts = append(exts, e); return nil })
			checkExtents(t, info, exts, err)
		}
	})
}

// TestFuzzSeed: the main seed is a valid VHDX, so the fuzzer starts from
// inputs that reach the metadata and log code.
func TestFuzzSeed(t *testing.T) {
	info, err := Parse(fuzzSeed().image(true), 4*mib, "seed")
	if err != nil || info.VirtualSize != 64*mib || info.LogicalSectorSize != 512 {
		t.Fatalf("seed: %+v, %v", info, err)
	}
}

type fuzzInput struct {
	fti, h1, h2, rt, table, items []byte
	size                          int64
}

// fuzzSeed is the pinned layout cut to the bytes that matter: headers and
// region table to their fields (fix restores the checksums), items packed
// 16 bytes apart.
func fuzzSeed() fuzzInput {
	l := baseLayout()
	rawItems(l)
	var items []byte
	for i := range l.items {
		l.items[i].off = uint32(metadataTableSize + 16*i)
		items = append(items, l.items[i].data...)
		items = append(items, make([]byte, 16-len(l.items[i].data))...)
	}
	table, _ := metadataBlock(l.items, true)
	return fuzzInput{
		fti:   ftiBlock("QEMU v7.2.22"),
		h1:    headerBlock(l.headers[0])[:80],
		h2:    headerBlock(l.headers[1])[:80],
		rt:    regionBlock(l.regions)[:regionHeaderSize+len(l.regions)*regionEntrySize],
		table: table[:metadataHeaderSize+len(l.items)*metadataEntrySize],
		items: items,
		size:  4 * mib,
	}
}

// image places each structure at its offset; with fix it recomputes the
// header and region table checksums.
func (in fuzzInput) image(fix bool) *sparse {
	size := in.size
	if size > fuzzMaxSize { // bounds the log scan; huge sizes have unit tests
		size = fuzzMaxSize - size%mib
	}
	s := &sparse{size: size}
	place := func(off int64, b []byte, block, sum int) {
		if len(b) > block {
			b = b[:block]
		}
		if fix && sum >= 0 && len(b) >= sum+4 {
			full := make([]byte, block)
			copy(full, b)
			putChecksum(full, sum)
			b = full
		}
		s.put(off, b)
	}
	place(0, in.fti, 64*kib, -1)
	place(header1Offset, in.h1, headerSize, hChecksum)
	place(header2Offset, in.h2, headerSize, hChecksum)
	place(regionTable1Offset, in.rt, regionTableSize, 4)
	place(regionTable2Offset, in.rt, regionTableSize, 4)
	place(fuzzMetaOff, in.table, metadataTableSize, -1)
	place(fuzzMetaOff+metadataTableSize, in.items, 64*kib, -1)
	return s
}

// checkInfo asserts what any Parse result must satisfy.
func checkInfo(t *testing.T, info Info, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrNotVHDX) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if info != (Info{}) {
			t.Fatalf("Parse returned %+v with error %v", info, err)
		}
		return
	}
	switch {
	case info.HeaderOffset != header1Offset && info.HeaderOffset != header2Offset:
		t.Fatalf("HeaderOffset %d", info.HeaderOffset)
	case info.LogicalSectorSize != 512 && info.LogicalSectorSize != 4096:
		t.Fatalf("LogicalSectorSize %d", info.LogicalSectorSize)
	case info.VirtualSize < 0 || info.VirtualSize > maxVirtualSize || info.VirtualSize%int64(info.LogicalSectorSize) != 0:
		t.Fatalf("VirtualSize %d", info.VirtualSize)
	case info.LogOffset < mib || info.LogOffset%mib != 0 || info.LogLength%mib != 0:
		t.Fatalf("log at %d, %d bytes", info.LogOffset, info.LogLength)
	case !validBlockSize(info.BlockSize) || info.BATLength == 0 || info.MetadataLength == 0:
		t.Fatalf("BlockSize %d, BAT %d bytes, metadata %d bytes", info.BlockSize, info.BATLength, info.MetadataLength)
	case (CheckReplayed(info) == nil) != info.LogEmpty():
		t.Fatalf("CheckReplayed %v, LogEmpty %v", CheckReplayed(info), info.LogEmpty())
	}
}

// FuzzExtents: ScanExtents never panics, fails only with a sentinel,
// allocates a bounded amount, and agrees with modelScan: the same error or
// success, the same extents. The harness builds a valid VHDX (the pinned
// layout) around the fuzzer's Virtual Disk Size, sector size, File
// Parameters, BAT region length (1 to 4 MiB), BAT bytes at 3 MiB and file
// size, and reads the BAT in chunks of chunk entries, so most inputs reach
// the BAT.
//
//	go test -run '^$' -fuzz FuzzExtents -fuzztime 20s ./replica/vhdx
func FuzzExtents(f *testing.F) {
	bat := func(es ...uint64) []byte {
		var b []byte
		for _, e := range es {
			b = append(b, le64(e)...)
		}
		return b
	}
	f.Add(uint64(64*mib), false, uint32(32*mib), uint32(0), uint8(0), bat(ent(6, 4), ent(6, 36)), int64(68*mib), uint16(0))
	f.Add(uint64(64*mib+4096), true, uint32(mib), uint32(1), uint8(1), bat(ent(2, 0), ent(7, 9), ent(6, 3), ent(4, 7)), int64(40*mib), uint16(1))
	f.Add(uint64(20*256*mib), false, uint32(256*mib), uint32(0), uint8(0),
		bat(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ent(6, 4), ent(6, 9999), ent(6, 5)), int64(fuzzMaxSize), uint16(3))
	f.Add(uint64(64<<40), false, uint32(mib), uint32(2), uint8(3), bat(ent(6, 8)), int64(9*mib), uint16(0))

	f.Fuzz(func(t *testing.T, vsize uint64, sector4k bool, bs, flags uint32, batMiB uint8, bat []byte, size int64, chunk uint16) {
		sector := uint32(512)
		if sector4k {
			sector = 4096
		}
		l := baseLayout()
		setItem(l, itemVirtualDiskSize, le64(vsize))
		setItem(l, itemLogicalSectorSize, le32(sector))
		setItem(l, itemFileParameters, append(le32(bs), le32(flags)...))
		l.regions[0].length = uint32(batMiB%4+1) * mib
		l.size = min(max(size, 0), fuzzMaxSize)
		s := l.build()
		s.put(3*mib, bat[:min(len(bat), int(l.regions[0].length))])
		old := batChunk
		batChunk = max(int(chunk), 1) * batEntrySize
		defer func() { batChunk = old }()

		info, err := Parse(s, s.size, "fuzz.vhdx")
		checkInfo(t, info, err)
		if err != nil {
			return
		}
		want, ok := modelScan(info, s)
		k := 0
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = ScanExtents(s, s.size, info, func(e Extent) error {
			if k >= len(want) || e != want[k] {
				t.Fatalf("extent %d is %v; the model has %v", k, e, want)
			}
			k++
			return nil
		})
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 512<<10 {
			t.Fatalf("ScanExtents allocated %d bytes", grew)
		}
		checkExtents(t, info, want[:k], err)
		if (err == nil) != ok || (ok && k != len(want)) {
			t.Fatalf("ScanExtents: %d extents, %v; the model: %v, valid %v", k, err, want, ok)
		}
	})
}
