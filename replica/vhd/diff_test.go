package vhd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/asr-project/asr/replica/vhd/qemutest"
)

func mustWrite(t testing.TB, d *Disk, want []byte, off int64, data []byte) {
	t.Helper()
	if n, err := d.WriteAt(data, off); n != len(data) || err != nil {
		t.Fatalf("WriteAt(%d bytes at %d) on %s: n=%d err=%v", len(data), off, d.Path(), n, err)
	}
	if want != nil {
		copy(want[off:], data)
	}
}

func mustEqual(t testing.TB, d *Disk, want []byte, what string) {
	t.Helper()
	if got := readAll(t, d); !bytes.Equal(got, want) {
		i := firstDiff(got, want)
		t.Fatalf("%s: %s differs at byte %d: have %#x, want %#x", what, d.Path(), i, got[i], want[i])
	}
}

// diffWrites hit partial sectors, block edges (64 KiB blocks), fresh and
// already allocated blocks, and the parent's hole.
var diffWrites = []ourWrite{
	{1003, pattern(10, 0x21)},
	{64<<10 - 100, pattern(300, 0x22)},
	{512 << 10, pattern(4096, 0x23)},
	{512<<10 + 4096 + 17, pattern(1, 0x24)},
	{1003 + 5, pattern(700, 0x25)},
	{1<<20 - 1, []byte{0x26}},
}

func TestDifferencingChain(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.vhd")
	p, err := CreateFixed(base, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 1<<20)
	mustWrite(t, p, want, 0, pattern(256<<10, 0x40)) // [512K, 768K) stays a hole
	mustWrite(t, p, want, 768<<10, pattern(256<<10, 0x41))
	p.Close()
	parentWant := bytes.Clone(want)

	childPath := childOf(t, base, "child.vhd", 64<<10)
	c, err := OpenWritable(childPath)
	if err != nil {
		t.Fatal(err)
	}
	if c.Type() != TypeDifferencing || c.Size() != 1<<20 {
		t.Fatalf("child type %s size %d", c.Type(), c.Size())
	}
	mustEqual(t, c, want, "empty child")
	for _, w := range diffWrites {
		mustWrite(t, c, want, w.off, w.data)
		mustEqual(t, c, want, "child after write")
	}
	c.Close()
	if b, err := os.ReadFile(base); err != nil || !bytes.Equal(b[:1<<20], parentWant) {
		t.Fatalf("parent changed through the child (%v)", err)
	}

	c, err = Open(childPath)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, c, want, "reopened child")
	ext, err := c.Extents()
	if err != nil {
		t.Fatal(err)
	}
	checkExtents(t, ext, want)
	c.Close()

	// A grandchild reads through two levels and writes its own layer.
	gcPath := childOf(t, childPath, "grandchild.vhd", 4096)
	gc, err := OpenWritable(gcPath)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, gc, want, "empty grandchild")
	mustWrite(t, gc, want, 600<<10+1, pattern(9000, 0x50))
	mustEqual(t, gc, want, "grandchild")
	gc.Close()

	info, err := Inspect(gcPath)
	if err != nil || !info.Valid || info.Type != TypeDifferencing || info.Parent != childPath ||
		info.ParentUUID != uuidString(c.ft.id) || info.VirtualSize != 1<<20 {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
}

// TestDifferencingOverQemuParent: a qemu-made dynamic parent under a child
// of ours; qemu (which reads differencing VHDs as plain dynamic ones) still
// accepts the child's structure.
func TestDifferencingOverQemuParent(t *testing.T) {
	qemutest.Need(t, "qemu-img")
	qemutest.Need(t, "qemu-io")
	dir := t.TempDir()
	base, raw := filepath.Join(dir, "base.vhd"), filepath.Join(dir, "base.raw")
	qemutest.Create(t, base, "dynamic", 5<<20)
	qemutest.Write(t, base, "vpc", 0, 3<<20, 0x61)
	qemutest.ToRaw(t, base, "vpc", raw)
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenWritable(childOf(t, base, "child.vhd", 2<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustWrite(t, c, want, 2<<20-5, pattern(10, 0x62))
	mustWrite(t, c, want, 4<<20+300, pattern(1000, 0x63))
	mustEqual(t, c, want, "child of qemu disk")
	run(t, "qemu-img", "info", "-f", "vpc", c.Path())
}

func TestConcurrentReadWrite(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "d.vhd", image{size: 1 << 20, bs: 16 << 10}.bytes())
	d, err := OpenWritable(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := make([]byte, 1<<20)
	var wg sync.WaitGroup
	for w := range 4 {
		chunk := pattern(6000, byte(w+1))
		for i := range 20 {
			copy(want[int64(w)*256<<10+int64(i)*10000:], chunk)
		}
		wg.Go(func() {
			for i := range 20 {
				if _, err := d.WriteAt(chunk, int64(w)*256<<10+int64(i)*10000); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Go(func() {
			buf := make([]byte, 100<<10)
			for i := range 20 {
				if _, err := d.ReadAt(buf, int64(i)*37<<10); err != nil {
					t.Error(err)
				}
				if _, err := d.Extents(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	mustEqual(t, d, want, "after concurrent writes")
}

// The parent is found by an absolute Windows locator's base name, by the
// header's parent name alone, and by a relative locator from a subfolder.
func TestParentLocatorFallbacks(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "parent.vhd")
	p, err := CreateFixed(base, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64<<10)
	mustWrite(t, p, want, 100, pattern(5000, 0x31))
	id, ts := p.ft.id, p.ft.timestamp
	p.Close()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]image{
		"w2ku.vhd":     {locators: [][2]string{{"W2ku", `C:\Hyper-V\Disks\parent.vhd`}}},
		"name.vhd":     {parentName: "parent.vhd"},
		"sub/w2ru.vhd": {locators: [][2]string{{"W2ru", `..\parent.vhd`}, {"W2ku", `D:\x\nothere.vhd`}}},
	} {
		m.size, m.bs, m.diskType, m.parentID, m.parentTime = 64<<10, 4096, diskDifferencing, id, ts
		path := writeFile(t, dir, name, m.bytes())
		d, err := Open(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		mustEqual(t, d, want, name)
		d.Close()
		if info, err := Inspect(path); err != nil || filepath.Clean(info.Parent) != base {
			t.Fatalf("%s: Inspect parent %q, %v", name, info.Parent, err)
		}
	}
}

// Blocks smaller than 4 KiB still carry a whole sector of bitmap.
func TestSmallBlocks(t *testing.T) {
	for _, bs := range []int64{512, 1024, 4096} {
		dir := t.TempDir()
		base := filepath.Join(dir, "base.vhd")
		p, err := CreateFixed(base, 16<<10)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 1<<20)
		mustWrite(t, p, want, 0, pattern(1<<20, 0x10))
		p.Close()
		dyn := writeFile(t, dir, "dyn.vhd", image{size: 1 << 20, bs: bs}.bytes())
		dwant := make([]byte, 1<<20)
		for _, path := range []string{childOf(t, base, "child.vhd", bs), dyn} {
			d, err := OpenWritable(path)
			if err != nil {
				t.Fatalf("bs %d: %v", bs, err)
			}
			w := want
			if path == dyn {
				w = dwant
			}
			for _, x := range diffWrites {
				mustWrite(t, d, w, x.off, x.data)
			}
			d.Close()
			if d, err = Open(path); err != nil {
				t.Fatalf("bs %d: reopen: %v", bs, err)
			}
			mustEqual(t, d, w, fmt.Sprintf("bs %d", bs))
			d.Close()
		}
	}
}
