package vhdx

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/asr-project/asr/replica/vhd/qemutest"
)

// qemuWrites are the writes TestQemuExtents makes, as qemu-io commands
// and as byte ranges with their pattern.
var qemuWrites = []struct {
	cmd      string
	off, len int64
	pattern  byte
}{
	{"write -P 0x11 3M 64k", 3 * mib, 64 * kib, 0x11},
	{"write -P 0x22 40M 1M", 40 * mib, mib, 0x22},
}

func TestQemuExtents(t *testing.T) {
	for _, c := range []struct {
		name, opts string
		blockSize  uint32
		want       []Extent // after qemuWrites
	}{
		// qemu picks 8 MiB blocks for disks up to 1 GiB.
		{"default", "subformat=dynamic", 8 * mib, []Extent{{0, 8 * mib}, {40 * mib, 8 * mib}}},
		{"1M", "subformat=dynamic,block_size=1M", mib, []Extent{{3 * mib, mib}, {40 * mib, mib}}},
		{"32M", "subformat=dynamic,block_size=32M", 32 * mib, []Extent{{0, 64 * mib}}},
		{"fixed", "subformat=fixed", 8 * mib, []Extent{{0, 8 * mib}, {40 * mib, 8 * mib}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			qemutest.Need(t, "qemu-io")
			path := filepath.Join(t.TempDir(), c.name+".vhdx")
			qemutest.CreateFormat(t, path, "vhdx", c.opts, qemuSize)
			info := mustRead(t, path)
			if info.BlockSize != c.blockSize || info.HasParent || info.LeaveBlocksAllocated != (c.name == "fixed") {
				t.Fatalf("BlockSize %d HasParent %v LeaveBlocksAllocated %v", info.BlockSize, info.HasParent, info.LeaveBlocksAllocated)
			}
			// What qemu 7.2 writes, fixed or dynamic (its default
			// block_state_zero=on): every payload entry PAYLOAD_BLOCK_ZERO
			// with FileOffsetMB 0, so a new disk has no extents.
			for i, e := range batEntries(t, path, info, qemuSize/int64(c.blockSize)) {
				if e != blockZero {
					t.Fatalf("new file: BAT entry %d is 0x%x, want 0x2 (PAYLOAD_BLOCK_ZERO, offset 0)", i, e)
				}
			}
			if exts, err := Extents(path); err != nil || len(exts) != 0 {
				t.Fatalf("new file: Extents = %v, %v; want none", exts, err)
			}
			size := fileSize(t, path)
			for _, w := range qemuWrites {
				mustTool(t, "qemu-io", "-f", "vhdx", "-c", w.cmd, path)
			}
			exts, err := Extents(path)
			if err != nil || !reflect.DeepEqual(exts, c.want) {
				t.Fatalf("Extents = %v, %v; want %v", exts, err, c.want)
			}
			if !reflect.DeepEqual(c.want, blocksOf(int64(c.blockSize))) {
				t.Fatalf("want %v is not the blocks of the writes, %v", c.want, blocksOf(int64(c.blockSize)))
			}
			// qemu allocates each written block at the end of the file
			// (1 MiB aligned), even in a fixed file whose preallocated
			// space it leaves unused, and marks it FULLY_PRESENT.
			entries := batEntries(t, path, info, qemuSize/int64(c.blockSize))
			for i, w := range c.want {
				for b := w.Off / int64(c.blockSize); b < w.End()/int64(c.blockSize); b++ {
					idx := b + b/(sectorsPerChunk*512/int64(c.blockSize))
					if e := entries[idx]; e&7 != blockFullyPresent || int64(e&batOffsetMask) < size {
						t.Errorf("extent %d: BAT entry %d is 0x%x, want FULLY_PRESENT at or past the old end of file %d", i, idx, e, size)
					}
				}
			}
			checkQemuMap(t, path)
			checkRaw(t, path, exts)
		})
	}
}

// TestQemuFixedPresent: with block_state_zero=off, qemu-img makes a fixed
// file the spec's way: every block FULLY_PRESENT in the preallocated
// space, so the whole disk is one extent.
func TestQemuFixedPresent(t *testing.T) {
	qemutest.Need(t, "qemu-img")
	path := filepath.Join(t.TempDir(), "f.vhdx")
	qemutest.CreateFormat(t, path, "vhdx", "subformat=fixed,block_state_zero=off", qemuSize)
	info := mustRead(t, path)
	for i, e := range batEntries(t, path, info, 8) {
		if want := uint64(8*mib+int64(i)*8*mib) | blockFullyPresent; e != want {
			t.Fatalf("BAT entry %d is 0x%x, want 0x%x", i, e, want)
		}
	}
	exts, err := Extents(path)
	if err != nil || !reflect.DeepEqual(exts, []Extent{{0, qemuSize}}) {
		t.Fatalf("Extents = %v, %v; want the whole disk", exts, err)
	}
}

// blocksOf is the merged blocks of bs bytes that qemuWrites touch.
func blocksOf(bs int64) []Extent {
	var out []Extent
	for _, w := range qemuWrites {
		for b := w.off / bs; b <= (w.off+w.len-1)/bs; b++ {
			if k := len(out) - 1; k >= 0 && out[k].End() >= b*bs {
				out[k].Len = b*bs + bs - out[k].Off
			} else {
				out = append(out, Extent{b * bs, bs})
			}
		}
	}
	return out
}

// checkQemuMap: qemu-img map calls every byte of a VHDX data, written or
// not (qemu's vhdx driver has no block status), which is why asr reads
// the BAT itself.
func checkQemuMap(t *testing.T, path string) {
	t.Helper()
	var m []struct {
		Start, Length int64
		Data, Zero    bool
	}
	if err := json.Unmarshal([]byte(mustTool(t, "qemu-img", "map", "--output=json", "-f", "vhdx", path)), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || m[0].Start != 0 || m[0].Length != qemuSize || !m[0].Data || m[0].Zero {
		t.Fatalf("qemu-img map: %+v, want one data extent over the disk", m)
	}
}

// checkRaw converts path to raw with qemu-img: every byte outside exts is
// zero, so skipping them is safe, and the written patterns are there.
func checkRaw(t *testing.T, path string, exts []Extent) {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "d.raw")
	qemutest.ToRaw(t, path, "vhdx", raw)
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, qemuSize)
	for _, w := range qemuWrites {
		copy(want[w.off:], bytes.Repeat([]byte{w.pattern}, int(w.len)))
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("qemu-img convert: the raw image is not the written patterns on zeros")
	}
	off := int64(0)
	for _, e := range append(exts, Extent{qemuSize, 0}) {
		if i := bytes.IndexFunc(b[off:e.Off], func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("byte %d, outside the extents, is not zero", off+int64(i))
		}
		off = e.End()
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// batEntries reads the first n BAT entries of path.
func batEntries(t *testing.T, path string, info Info, n int64) []uint64 {
	t.Helper()
	b := make([]byte, n*batEntrySize)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, int64(info.BATOffset)); err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[i*batEntrySize:])
	}
	return out
}

// writeAt writes b at off in path.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// qemuBlock makes a 64 MiB VHDX in 1 MiB blocks whose block 0 holds 0x33
// (so its BAT entry 0 is FULLY_PRESENT at 8 MiB, measured) and whose
// block 40 holds 0x44.
func qemuBlock(t *testing.T) (string, Info) {
	t.Helper()
	qemutest.Need(t, "qemu-io")
	path := filepath.Join(t.TempDir(), "b.vhdx")
	qemutest.CreateFormat(t, path, "vhdx", "block_size=1M", qemuSize)
	mustTool(t, "qemu-io", "-f", "vhdx", "-c", "write -P 0x33 0 1M", "-c", "write -P 0x44 40M 1M", path)
	info := mustRead(t, path)
	if e := batEntries(t, path, info, 1)[0]; e != 8*mib|blockFullyPresent {
		t.Fatalf("BAT entry 0 is 0x%x, want FULLY_PRESENT at 8 MiB", e)
	}
	return path, info
}

// TestQemuBATStates sets block 0's state, keeping its file offset (whose
// data is 0x33), and checks Extents against what qemu reads: every state
// Extents skips reads as zeros; state 4 is corrupt (qemu fails the read);
// PARTIALLY_PRESENT counts as data (qemu fails the read too).
func TestQemuBATStates(t *testing.T) {
	block40 := []Extent{{40 * mib, mib}}
	for _, c := range []struct {
		state    uint64
		want     []Extent
		qemuRead string // in qemu-io's output for `read -P 0 0 1M`
	}{
		{blockNotPresent, block40, "read 1048576/1048576"},
		{blockUndefined, block40, "read 1048576/1048576"},
		{blockZero, block40, "read 1048576/1048576"},
		{blockUnmapped, block40, "read 1048576/1048576"},
		{4, nil, "read failed: Input/output error"},
		{blockUnmappedV095, block40, "read 1048576/1048576"},
		{blockPartiallyPresent, []Extent{{0, mib}, {40 * mib, mib}}, "read failed: Input/output error"},
	} {
		path, info := qemuBlock(t)
		writeAt(t, path, int64(info.BATOffset), le64(8*mib|c.state))
		exts, err := Extents(path)
		if c.state == 4 {
			checkErr(t, err, ErrCorrupt, "BAT entry 0 (payload block 0) at offset 2097152: entry 0x0000000000800004: state 4")
		} else if err != nil || !reflect.DeepEqual(exts, c.want) {
			t.Fatalf("state %d: Extents = %v, %v", c.state, exts, err)
		}
		out, _ := tool(t, "qemu-io", "-r", "-f", "vhdx", "-c", "read -P 0 0 1M", path)
		if !strings.Contains(out, c.qemuRead) || strings.Contains(out, "Pattern verification failed") {
			t.Fatalf("state %d: qemu-io read -P 0 0 1M:\n%s\nwant %q and the zero pattern", c.state, out, c.qemuRead)
		}
	}
}

// TestQemuBATCorrupt: a present block past the end of the file, cut off
// by truncation, or over the metadata region is ErrCorrupt naming the
// block; qemu refuses to open such files too.
func TestQemuBATCorrupt(t *testing.T) {
	for _, c := range []struct {
		name   string
		edit   func(t *testing.T, path string, info Info)
		want   string
		qemuIs string
	}{
		{"entry past end", func(t *testing.T, path string, info Info) {
			writeAt(t, path, int64(info.BATOffset)+40*batEntrySize, le64(1000*mib|blockFullyPresent))
		}, "BAT entry 40 (payload block 40) at offset 2097472: entry 0x000000003e800006: PAYLOAD_BLOCK_FULLY_PRESENT " +
			"for virtual bytes 41943040 to 42991616 at file offset 1048576000 ends past the end of the 10485760-byte file", "points after end of file"},
		{"file cut", func(t *testing.T, path string, info Info) {
			if err := os.Truncate(path, fileSize(t, path)-4096); err != nil {
				t.Fatal(err)
			}
		}, "BAT entry 40 (payload block 40)", "points after end of file"},
		{"over metadata", func(t *testing.T, path string, info Info) {
			writeAt(t, path, int64(info.BATOffset)+40*batEntrySize, le64(info.MetadataOffset|blockFullyPresent))
		}, "at file offset 3145728 overlaps the metadata region (1048576 bytes at offset 3145728)", "overlaps"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path, info := qemuBlock(t)
			c.edit(t, path, info)
			_, err := Extents(path)
			checkErr(t, err, ErrCorrupt, c.want)
			if out, err := tool(t, "qemu-img", "info", "-f", "vhdx", path); err == nil || !strings.Contains(out, c.qemuIs) {
				t.Fatalf("qemu-img info: %v, want a refusal with %q:\n%s", err, c.qemuIs, out)
			}
		})
	}
}

// TestQemuDifferencing sets HasParent in a qemu file's File Parameters:
// Read reports it, Extents refuses it, and qemu does not open it.
func TestQemuDifferencing(t *testing.T) {
	path, info := qemuBlock(t)
	writeAt(t, path, int64(info.MetadataOffset)+itemOffset(t, path, info)+4, le32(2))
	info = mustRead(t, path)
	if !info.HasParent || info.LeaveBlocksAllocated {
		t.Fatalf("Info %+v, want HasParent", info)
	}
	_, err := Extents(path)
	checkErr(t, err, ErrUnsupported, "HasParent is set", "Merge-VHD")
	if out, err := tool(t, "qemu-img", "info", "-f", "vhdx", path); err == nil {
		t.Fatalf("qemu-img info opened a differencing VHDX:\n%s", out)
	}
}

// itemOffset finds the File Parameters item in path's metadata table.
func itemOffset(t *testing.T, path string, info Info) int64 {
	t.Helper()
	b := make([]byte, metadataTableSize)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, int64(info.MetadataOffset)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < int(binary.LittleEndian.Uint16(b[10:])); i++ {
		e := b[metadataHeaderSize+i*metadataEntrySize:]
		if bytes.Equal(e[:16], putGUIDBytes(itemFileParameters)) {
			return int64(binary.LittleEndian.Uint32(e[16:]))
		}
	}
	t.Fatal("no File Parameters item")
	return 0
}
