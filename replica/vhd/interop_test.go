package vhd

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/asr-project/asr/replica/vhd/qemutest"
)

type qwrite struct {
	off, n  int64
	pattern byte
}

// qemuWrites straddle block boundaries and reach the last, partial block
// of a 7 MiB disk (blocks of 2 MiB: 0, 1, 3 get data, block 2 stays empty).
var qemuWrites = []qwrite{
	{0, 4096, 0x11},
	{2<<20 - 1024, 3072, 0x22},
	{6<<20 + 512, 64 << 10, 0x33},
	{7<<20 - 512, 512, 0x44},
	{1 << 20, 512, 0x55},
}

func readAll(t testing.TB, d *Disk) []byte {
	t.Helper()
	got := make([]byte, d.Size())
	if n, err := d.ReadAt(got, 0); n != len(got) || err != nil {
		t.Fatalf("ReadAt whole disk: n=%d err=%v", n, err)
	}
	return got
}

// checkExtents asserts every non-zero byte of want lies inside ext.
func checkExtents(t testing.TB, ext []Extent, want []byte) {
	t.Helper()
	covered := make([]bool, len(want))
	for i, x := range ext {
		if x.Off < 0 || x.Len <= 0 || x.Off+x.Len > int64(len(want)) {
			t.Fatalf("extent %d %+v outside the %d-byte disk", i, x, len(want))
		}
		if i > 0 && x.Off <= ext[i-1].Off+ext[i-1].Len {
			t.Fatalf("extents %+v and %+v not sorted and merged", ext[i-1], x)
		}
		for j := x.Off; j < x.Off+x.Len; j++ {
			covered[j] = true
		}
	}
	for i, c := range want {
		if c != 0 && !covered[i] {
			t.Fatalf("non-zero byte at %d outside extents %+v", i, ext)
		}
	}
}

func TestInteropRead(t *testing.T) {
	qemutest.Need(t, "qemu-img")
	qemutest.Need(t, "qemu-io")
	for _, sub := range []string{"fixed", "dynamic"} {
		t.Run(sub, func(t *testing.T) {
			dir := t.TempDir()
			img, raw := filepath.Join(dir, "d.vhd"), filepath.Join(dir, "d.raw")
			qemutest.Create(t, img, sub, 7<<20)
			for _, w := range qemuWrites {
				qemutest.Write(t, img, "vpc", w.off, w.n, w.pattern)
			}
			qemutest.ToRaw(t, img, "vpc", raw)
			want, err := os.ReadFile(raw)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if string(d.Type()) != sub || d.Size() != 7<<20 {
				t.Fatalf("type %s size %d, want %s %d", d.Type(), d.Size(), sub, 7<<20)
			}
			if got := readAll(t, d); !bytes.Equal(got, want) {
				t.Fatalf("ReadAt differs from qemu-img convert at byte %d", firstDiff(got, want))
			}
			ext, err := d.Extents()
			if err != nil {
				t.Fatal(err)
			}
			checkExtents(t, ext, want)
			if sub == "dynamic" {
				wantExt := []Extent{{0, 4 << 20}, {6 << 20, 1 << 20}}
				if !equalExtents(ext, wantExt) {
					t.Fatalf("extents %+v, want %+v (block 2 unallocated)", ext, wantExt)
				}
			}
			// Reads that cross block ends and the disk end.
			buf := make([]byte, 5000)
			n, err := d.ReadAt(buf, 7<<20-3000)
			if n != 3000 || err == nil || !bytes.Equal(buf[:n], want[7<<20-3000:]) {
				t.Fatalf("read over the end: n=%d err=%v", n, err)
			}
		})
	}
}

func equalExtents(a, b []Extent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

type ourWrite struct {
	off  int64
	data []byte
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
		if b[i] == 0 {
			b[i] = 1
		}
	}
	return b
}

// ourWrites are unaligned and cross 2 MiB block boundaries.
var ourWrites = []ourWrite{
	{100, pattern(1000, 1)},
	{2<<20 - 700, pattern(5000, 2)},
	{4<<20 + 3, pattern(1<<20, 3)},
	{8<<20 - 1, []byte{9}},
}

func TestInteropFixedCreate(t *testing.T) {
	qemutest.Need(t, "qemu-img")
	dir := t.TempDir()
	img, raw := filepath.Join(dir, "f.vhd"), filepath.Join(dir, "f.raw")
	d, err := CreateFixed(img, 7<<20+1) // rounds up to 8 MiB
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 8<<20)
	for _, w := range ourWrites {
		if n, err := d.WriteAt(w.data, w.off); n != len(w.data) || err != nil {
			t.Fatalf("WriteAt %d: n=%d err=%v", w.off, n, err)
		}
		copy(want[w.off:], w.data)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(raw, want, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-img", "info", "-f", "vpc", "--output", "json", img).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.VirtualSize != 8<<20 {
		t.Fatalf("qemu-img info virtual-size %d (err %v), want %d\n%s", info.VirtualSize, err, 8<<20, out)
	}
	qemutest.Compare(t, img, "vpc", raw, "raw")

	d, err = Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Type() != TypeFixed || !bytes.Equal(readAll(t, d), want) {
		t.Fatalf("reopened fixed disk (%s) reads other bytes", d.Type())
	}
	ext, err := d.Extents()
	if err != nil {
		t.Fatal(err)
	}
	checkExtents(t, ext, want)
	if n, _ := d.AllocatedBytes(); n >= 8<<20 {
		t.Logf("file system reports no holes: %d allocated", n)
	}
}

func TestInteropDynamicWrite(t *testing.T) {
	qemutest.Need(t, "qemu-img")
	qemutest.Need(t, "qemu-io")
	dir := t.TempDir()
	img, raw := filepath.Join(dir, "d.vhd"), filepath.Join(dir, "d.raw")
	qemutest.Create(t, img, "dynamic", 9<<20)
	want := make([]byte, 9<<20)
	qemutest.Write(t, img, "vpc", 2<<20, 8192, 0x5a)
	copy(want[2<<20:], bytes.Repeat([]byte{0x5a}, 8192))

	d, err := OpenWritable(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ourWrites {
		if n, err := d.WriteAt(w.data, w.off); n != len(w.data) || err != nil {
			t.Fatalf("WriteAt %d: n=%d err=%v", w.off, n, err)
		}
		copy(want[w.off:], w.data)
		// After every write qemu must read the file as it stands.
		qemutest.ToRaw(t, img, "vpc", raw)
		if got, _ := os.ReadFile(raw); !bytes.Equal(got, want) {
			t.Fatalf("after WriteAt %d qemu reads other bytes at %d", w.off, firstDiff(got, want))
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "info", "-f", "vpc", img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	// qemu keeps allocating after our blocks; we read its result.
	qemutest.Write(t, img, "vpc", 6<<20, 4096, 0x77)
	copy(want[6<<20:], bytes.Repeat([]byte{0x77}, 4096))
	d, err = Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := readAll(t, d); !bytes.Equal(got, want) {
		t.Fatalf("reopened disk differs at %d", firstDiff(got, want))
	}
	ext, _ := d.Extents()
	if want := []Extent{{0, 8 << 20}}; !equalExtents(ext, want) { // block 4 unwritten
		t.Fatalf("extents %+v, want %+v", ext, want)
	}
}
