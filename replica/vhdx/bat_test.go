package vhdx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"

	"github.com/google/uuid"
)

// ent is a BAT entry: state in bits 0-2, the file offset in MiB from bit 20.
func ent(state, offMiB uint64) uint64 { return offMiB<<20 | state }

func setItem(l *layout, id uuid.UUID, data []byte) {
	for i := range l.items {
		if l.items[i].id == id {
			l.items[i].data = data
		}
	}
}

// geomLayout is the base layout (log at 1 MiB, metadata at 2 MiB, BAT at
// 3 MiB) for a disk of vsize bytes in bs-byte blocks of sector-byte
// sectors, its BAT region just long enough, its file sizeMiB long.
func geomLayout(vsize int64, bs, sector, flags uint32, sizeMiB int64) *layout {
	l := baseLayout()
	setItem(l, itemVirtualDiskSize, le64(uint64(vsize)))
	setItem(l, itemLogicalSectorSize, le32(sector))
	setItem(l, itemFileParameters, append(le32(bs), le32(flags)...))
	if validBlockSize(bs) {
		_, _, n := geometry(Info{VirtualSize: vsize, BlockSize: bs, LogicalSectorSize: sector})
		l.regions[0].length = uint32(max(mib, (n*batEntrySize+mib-1)/mib*mib))
	}
	l.size = sizeMiB * mib
	return l
}

// putBAT writes BAT entries by index into s, whose BAT is at 3 MiB.
func putBAT(s *sparse, entries map[uint64]uint64) {
	for idx, e := range entries {
		s.put(3*mib+int64(idx)*batEntrySize, le64(e))
	}
}

func scan(s *sparse) (Info, []Extent, error) {
	info, err := Parse(s, s.size, "/vm/d.vhdx")
	if err != nil {
		return info, nil, err
	}
	var out []Extent
	err = ScanExtents(s, s.size, info, func(e Extent) error { out = append(out, e); return nil })
	return info, out, err
}

func TestExtents(t *testing.T) {
	const m256 = 256 * mib
	for _, c := range []struct {
		name       string
		vsize      int64
		bs, sector uint32 // 32 MiB, 512 when 0
		flags      uint32
		sizeMiB    int64 // 68 when 0
		batLen     uint32
		entries    map[uint64]uint64
		want       []Extent
		wantErr    error
		wantText   []string
		logPending bool
	}{
		{name: "empty BAT"},
		{name: "block 1", entries: map[uint64]uint64{1: ent(6, 4)}, want: []Extent{{32 * mib, 32 * mib}}},
		{name: "two blocks merge", entries: map[uint64]uint64{0: ent(6, 36), 1: ent(6, 4)}, want: []Extent{{0, 64 * mib}}},
		{name: "partially present is data", entries: map[uint64]uint64{0: ent(7, 4)}, want: []Extent{{0, 32 * mib}}},
		{name: "hole states, offsets ignored", vsize: 160 * mib, sizeMiB: 200,
			entries: map[uint64]uint64{0: ent(0, 4), 1: ent(1, 36), 2: ent(2, 68), 3: ent(3, 100), 4: ent(5, 9999)}},
		{name: "state 4", entries: map[uint64]uint64{1: ent(4, 4)}, wantErr: ErrCorrupt, wantText: []string{
			"vhdx /vm/d.vhdx: BAT entry 1 (payload block 1) at offset 3145736: entry 0x0000000000400004: state 4 for virtual bytes 33554432 to 67108864 at file offset 4194304 is not a state [MS-VHDX] defines"}},
		{name: "past end of file", entries: map[uint64]uint64{0: ent(6, 4), 1: ent(6, 40)}, wantErr: ErrCorrupt, wantText: []string{
			"BAT entry 1 (payload block 1) at offset 3145736: entry 0x0000000002800006: PAYLOAD_BLOCK_FULLY_PRESENT for virtual bytes 33554432 to 67108864 at file offset 41943040 ends past the end of the 71303168-byte file (cut short?)",
			"qemu-img check -f vhdx /vm/d.vhdx"}},
		{name: "offset huge", entries: map[uint64]uint64{1: ^uint64(0)}, wantErr: ErrCorrupt, wantText: []string{"PAYLOAD_BLOCK_PARTIALLY_PRESENT", "ends past the end"}},
		{name: "in header section", entries: map[uint64]uint64{0: ent(6, 0)}, wantErr: ErrCorrupt,
			wantText: []string{"BAT entry 0 (payload block 0) at offset 3145728", "at file offset 0 lies in the 1 MiB header section"}},
		{name: "over log", entries: map[uint64]uint64{0: ent(7, 1)}, wantErr: ErrCorrupt, wantText: []string{"overlaps the log (1048576 bytes at offset 1048576)"}},
		{name: "over BAT", entries: map[uint64]uint64{0: ent(6, 3)}, wantErr: ErrCorrupt, wantText: []string{"overlaps the BAT region"}},
		{name: "over metadata", bs: mib, entries: map[uint64]uint64{5: ent(6, 2)}, wantErr: ErrCorrupt,
			wantText: []string{"BAT entry 5 (payload block 5)", "virtual bytes 5242880 to 6291456 at file offset 2097152 overlaps the metadata region"}},
		{name: "disk ends mid-block", vsize: 64*mib + 4096, sizeMiB: 69, entries: map[uint64]uint64{2: ent(6, 68)},
			want: []Extent{{64 * mib, 4096}}},
		{name: "file holds the part inside the disk", vsize: 64*mib + 4096, sizeMiB: 68, entries: map[uint64]uint64{2: ent(6, 67)},
			want: []Extent{{64 * mib, 4096}}},
		// 256 MiB blocks of 512-byte sectors: chunk ratio 16, so entry 16
		// is a sector bitmap entry (ignored, though it says present, past
		// the end of the file) and block 16 is entry 17.
		{name: "sector bitmap entries skipped", vsize: 20 * m256, bs: m256, sizeMiB: 516,
			entries: map[uint64]uint64{15: ent(6, 260), 16: ent(6, 9999), 17: ent(6, 4)},
			want:    []Extent{{15 * m256, 2 * m256}}},
		// 4096-byte sectors: chunk ratio 128; block 128 is entry 129.
		{name: "chunk ratio from the sector size", vsize: 129 * m256, bs: m256, sector: 4096, sizeMiB: 260,
			entries: map[uint64]uint64{128: ent(6, 9999), 129: ent(6, 4)},
			want:    []Extent{{128 * m256, m256}}},
		{name: "BAT region too small", vsize: 64 << 40, batLen: mib, wantErr: ErrCorrupt, wantText: []string{
			"BAT region at offset 3145728: 1048576 bytes hold 131072 entries; the 70368744177664-byte disk in 33554432-byte blocks needs 2113535 (2097152 payload blocks, a sector bitmap entry after every 128)"}},
		{name: "leave blocks allocated", flags: 1, entries: map[uint64]uint64{0: ent(2, 0)}},
		{name: "differencing", flags: 3, wantErr: ErrUnsupported, wantText: []string{
			"vhdx /vm/d.vhdx: File Parameters item: HasParent is set: a differencing disk",
			"does not open differencing VHDX either: unsupported VHDX version or feature (on the Hyper-V host, merge it"}},
		{name: "log pending", logPending: true, entries: map[uint64]uint64{0: ent(6, 4)}, wantErr: ErrLogNotEmpty},
		{name: "size 0", vsize: -1, batLen: mib},
	} {
		t.Run(c.name, func(t *testing.T) {
			vsize, bs, sector, sizeMiB := c.vsize, c.bs, c.sector, c.sizeMiB
			if vsize == 0 {
				vsize = 64 * mib
			} else if vsize < 0 {
				vsize = 0
			}
			if bs == 0 {
				bs = 32 * mib
			}
			if sector == 0 {
				sector = 512
			}
			if sizeMiB == 0 {
				sizeMiB = 68
			}
			l := geomLayout(vsize, bs, sector, c.flags, sizeMiB)
			if c.batLen != 0 {
				l.regions[0].length = c.batLen
			}
			logID := uuid.MustParse("0badc0de-0000-4000-8000-000000000009")
			if c.logPending {
				l.headers[1].log = logID
			}
			s := l.build()
			putBAT(s, c.entries)
			if c.logPending {
				s.putLog(mib, mib, 0, logEntry(logID, 1, 4*kib))
			}
			info, got, err := scan(s)
			checkErr(t, err, c.wantErr, c.wantText...)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("extents %v, want %v", got, c.want)
			}
			if info.LeaveBlocksAllocated != (c.flags&1 != 0) || info.HasParent != (c.flags&2 != 0) || info.BlockSize != bs {
				t.Fatalf("Info %+v", info)
			}
		})
	}
}

func TestFileParameters(t *testing.T) {
	for _, c := range []struct {
		name     string
		data     []byte
		wantText string
	}{
		{name: "1 MiB", data: append(le32(mib), le32(0)...)},
		{name: "256 MiB, reserved flags ignored", data: append(le32(256*mib), le32(0xfffffffc)...)},
		{name: "0", data: le64(0), wantText: "File Parameters item at offset 2162688: BlockSize 0, want a power of 2 from 1 MiB to 256 MiB"},
		{name: "512 KiB", data: append(le32(512*kib), le32(0)...), wantText: "BlockSize 524288"},
		{name: "512 MiB", data: append(le32(512*mib), le32(0)...), wantText: "BlockSize 536870912"},
		{name: "3 MiB", data: append(le32(3*mib), le32(0)...), wantText: "BlockSize 3145728"},
		{name: "short", data: le32(mib), wantText: "File Parameters item at offset 2162688: Length 4, want 8"},
		{name: "missing", wantText: "no File Parameters item (caa16737-fa36-4d43-b3b6-33f0aa44e76b) listed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := baseLayout()
			if c.data == nil {
				l.items = l.items[1:]
			} else {
				setItem(l, itemFileParameters, c.data)
			}
			info, err := l.parse()
			if c.wantText == "" {
				checkErr(t, err, nil)
				if info.BlockSize != binary.LittleEndian.Uint32(c.data) || info.HasParent || info.LeaveBlocksAllocated {
					t.Fatalf("Info %+v", info)
				}
				return
			}
			checkErr(t, err, ErrCorrupt, c.wantText)
		})
	}
}

// TestExtentsFile: Extents on a file, and its second look at the size
// when a block seems to end past the file (a writer extending it).
func TestExtentsFile(t *testing.T) {
	l := geomLayout(64*mib, 32*mib, 512, 0, 68)
	s := l.build()
	putBAT(s, map[uint64]uint64{0: ent(6, 36), 1: ent(6, 4)})
	got, err := Extents(s.file(t))
	if err != nil || !reflect.DeepEqual(got, []Extent{{0, 64 * mib}}) {
		t.Fatalf("Extents = %v, %v", got, err)
	}

	// Parse saw 68 MiB; the block at 36 MiB needs 68 MiB, so with 40 MiB
	// seen the scan asks once more and goes on when the file has grown.
	info, err := Parse(s, s.size, "grow")
	if err != nil {
		t.Fatal(err)
	}
	sc := newBATScan(s, 40*mib, info)
	calls := 0
	sc.grow = func() (int64, error) { calls++; return s.size, nil }
	var exts []Extent
	if err := sc.run(func(e Extent) error { exts = append(exts, e); return nil }); err != nil || calls != 1 ||
		!reflect.DeepEqual(exts, []Extent{{0, 64 * mib}}) {
		t.Fatalf("with growth: %v, %v after %d size checks", exts, err, calls)
	}
	sc = newBATScan(s, 40*mib, info)
	sc.grow = func() (int64, error) { return 50 * mib, nil }
	checkErr(t, sc.run(func(Extent) error { return nil }), ErrCorrupt, "ends past the end of the 52428800-byte file")

	stop := errors.New("stop")
	checkErr(t, ScanExtents(s, s.size, info, func(Extent) error { return stop }), stop)
	err = ScanExtents(s, s.size, Info{Path: "x"}, func(Extent) error { return nil })
	if err == nil || errors.Is(err, ErrCorrupt) {
		t.Fatalf("ScanExtents with a zero Info: %v", err)
	}
}

// TestExtentsHuge: the largest BAT the format allows (64 TiB in 1 MiB
// blocks: 67,125,247 entries, 512 MiB) is scanned in bounded memory, and
// the blocks after a sector bitmap entry and at the very end are found.
func TestExtentsHuge(t *testing.T) {
	if testing.Short() {
		t.Skip("scans a 512 MiB BAT")
	}
	const vsize = 64 << 40
	l := geomLayout(vsize, mib, 512, 0, 520)
	if l.regions[0].length != 513*mib {
		t.Fatalf("BAT region %d bytes", l.regions[0].length)
	}
	s := l.build()
	last := uint64(vsize/mib - 1)
	putBAT(s, map[uint64]uint64{0: ent(6, 516), 4096: ent(6, 9999) /* sector bitmap */, 4097: ent(6, 517), last + last/4096: ent(7, 518)})
	info, err := Parse(s, s.size, "huge")
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var got []Extent
	err = ScanExtents(s, s.size, info, func(e Extent) error { got = append(got, e); return nil })
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("ScanExtents allocated %d bytes", grew)
	}
	want := []Extent{{0, mib}, {4096 * mib, mib}, {vsize - mib, mib}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("extents %v, %v; want %v", got, err, want)
	}
}

// TestExtentsModel compares ScanExtents with a plain model on random
// geometries and BATs, read in chunks of many sizes.
func TestExtentsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		old := batChunk
		batChunk = []int{8, 16, 24, 64, 4096, 256 * kib}[i%6]
		bs := uint32(mib << rng.IntN(9))
		sector := uint32([]int{512, 4096}[rng.IntN(2)])
		vsize := int64(rng.IntN(300))*int64(bs) + int64(rng.IntN(3))*int64(sector)
		l := geomLayout(vsize, bs, sector, 0, 0)
		dataStart := 3*mib + int64(l.regions[0].length)
		_, _, n := geometry(Info{VirtualSize: vsize, BlockSize: bs, LogicalSectorSize: sector})
		l.size = dataStart + int64(n)*int64(bs)
		s := l.build()
		entries := map[uint64]uint64{}
		for j := range n {
			state := []uint64{0, 1, 2, 3, 5, 6, 6, 6, 7}[rng.IntN(9)]
			off := uint64(dataStart)/mib + uint64(rng.Int64N(int64(n)))*uint64(bs/mib)
			if rng.IntN(4) == 0 {
				continue
			}
			entries[j] = ent(state, off)
		}
		putBAT(s, entries)
		info, got, err := scan(s)
		batChunk = old
		want := modelExtents(info, entries)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d (block %d, sector %d, size %d, chunk %d): %v, %v; want %v", i, bs, sector, vsize, batChunk, got, err, want)
		}
	}
}

// modelExtents lists the present blocks of a valid BAT the plain way:
// walking every entry, counting payload and sector bitmap entries, one
// extent per block, merged at the end.
func modelExtents(info Info, entries map[uint64]uint64) []Extent {
	bs := int64(info.BlockSize)
	ratio := uint64(sectorsPerChunk) * uint64(info.LogicalSectorSize) / uint64(bs)
	var blocks []Extent
	block := int64(0)
	for idx := uint64(0); block*bs < info.VirtualSize; idx++ {
		if (idx+1)%(ratio+1) == 0 {
			continue // sector bitmap entry
		}
		if st := entries[idx] & 7; st == 6 || st == 7 {
			blocks = append(blocks, Extent{block * bs, min(bs, info.VirtualSize-block*bs)})
		}
		block++
	}
	var out []Extent
	for _, e := range blocks {
		if k := len(out) - 1; k >= 0 && out[k].End() == e.Off {
			out[k].Len += e.Len
		} else {
			out = append(out, e)
		}
	}
	return out
}

// checkExtents asserts what any ScanExtents result must satisfy.
func checkExtents(t *testing.T, info Info, exts []Extent, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrLogNotEmpty) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		return
	}
	end := int64(-1)
	for _, e := range exts {
		if e.Len <= 0 || e.Off <= end || e.Off%int64(info.BlockSize) != 0 || e.End() > info.VirtualSize ||
			(e.End()%int64(info.BlockSize) != 0 && e.End() != info.VirtualSize) {
			t.Fatalf("extent %v after end %d in %s", e, end, fmt.Sprint(exts))
		}
		end = e.End()
	}
}

// modelScan is ScanExtents the plain way: every entry read one by one from
// the BAT in r, payload and sector bitmap entries told apart by counting,
// every rule checked per block; ok is false where ScanExtents must fail.
func modelScan(info Info, r io.ReaderAt) (exts []Extent, ok bool) {
	if info.LogPending || info.HasParent {
		return nil, false
	}
	_, _, n := geometry(info)
	if n*8 > uint64(info.BATLength) {
		return nil, false
	}
	entries := map[uint64]uint64{}
	b := make([]byte, 8)
	for idx := range n {
		if _, err := r.ReadAt(b, int64(info.BATOffset+idx*8)); err != nil {
			return nil, false
		}
		entries[idx] = binary.LittleEndian.Uint64(b)
	}
	exts = modelExtents(info, entries)
	size := uint64(fileEnd(r))
	bs := uint64(info.BlockSize)
	block := uint64(0)
	for idx := range n {
		if (idx+1)%(sectorsPerChunk*uint64(info.LogicalSectorSize)/bs+1) == 0 {
			continue
		}
		e := entries[idx]
		blk := span{off: e &^ (mib - 1), length: min(bs, uint64(info.VirtualSize)-block*bs)}
		block++
		if e&7 == 4 {
			return nil, false
		}
		if e&7 != 6 && e&7 != 7 {
			continue
		}
		if blk.off < mib || blk.off > size || blk.off+blk.length > size ||
			blk.overlaps(span{off: info.LogOffset, length: uint64(info.LogLength)}) ||
			blk.overlaps(span{off: info.BATOffset, length: uint64(info.BATLength)}) ||
			blk.overlaps(span{off: info.MetadataOffset, length: uint64(info.MetadataLength)}) {
			return nil, false
		}
	}
	return exts, true
}

// fileEnd is the size of a *sparse.
func fileEnd(r io.ReaderAt) int64 { return r.(*sparse).size }
