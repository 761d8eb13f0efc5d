package vhd

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// dynBase is a 64 KiB dynamic VHD with 4 KiB blocks, blocks 0 and 3
// allocated: footer copy 0, header 512, BAT 1536, block 0 at 2048, block 3
// at 6656, footer at 11264.
func dynBase() image {
	return image{size: 64 << 10, bs: 4096, id: [16]byte{0xd1},
		blocks: map[int64][]byte{0: pattern(4096, 1), 3: pattern(4096, 2)}}
}

func fixedBase() []byte {
	return append(make([]byte, 64<<10), FixedFooter(64<<10, [16]byte{0xf1}, vhdEpoch)...)
}

// resum recomputes the checksum of the structure at off.
func resum(b []byte, off, size, csOff int) {
	be.PutUint32(b[off+csOff:], checksum(b[off:off+size], csOff))
}

func mutated(m image, f func(b []byte)) []byte { m.mutate = f; return m.bytes() }

func TestMalformed(t *testing.T) {
	const hdr, bat = 512, 1536
	parent := append(make([]byte, 64<<10), FixedFooter(64<<10, [16]byte{0xaa}, vhdEpoch)...)
	child := func(id [16]byte, ts uint32, loc string) []byte {
		return image{size: 64 << 10, bs: 4096, diskType: diskDifferencing, parentID: id, parentTime: ts,
			locators: [][2]string{{"W2ru", loc}}}.bytes()
	}
	cases := []struct {
		name   string
		img    []byte
		err    error
		field  string
		parent bool // write parent.vhd beside the image
	}{
		{"bad header cookie", mutated(dynBase(), func(b []byte) { copy(b[hdr:], "cxsparsX") }),
			ErrBadCookie, "dynamic header cookie at offset 512", false},
		{"bad footer checksum", mutated(dynBase(), func(b []byte) { b[len(b)-512+fCreatorApp] ^= 1 }),
			ErrBadChecksum, "footer checksum at offset 11264+64", false},
		{"bad fixed footer checksum", func() []byte { b := fixedBase(); b[len(b)-1] = 1; return b }(),
			ErrBadChecksum, "footer checksum at offset 65536+64", false},
		{"bad header checksum", mutated(dynBase(), func(b []byte) { b[hdr+900] = 7 }),
			ErrBadChecksum, "dynamic header checksum at offset 512+36", false},
		{"BAT entry past EOF", mutated(dynBase(), func(b []byte) { be.PutUint32(b[bat+4:], 1<<20) }),
			ErrBATPastEOF, "BAT entry 1 at offset 1536+4", false},
		{"BAT entry overlapping header", mutated(dynBase(), func(b []byte) { be.PutUint32(b[bat+8:], 1) }),
			ErrBATOverlap, "BAT entry 2 at offset 1536+8", false},
		{"block size not a power of two", mutated(dynBase(), func(b []byte) {
			be.PutUint32(b[hdr+hBlockSize:], 3000)
			resum(b, hdr, headerSize, hChecksum)
		}), ErrBlockSize, "dynamic header block size at offset 512+32", false},
		{"block size too large", mutated(dynBase(), func(b []byte) {
			be.PutUint32(b[hdr+hBlockSize:], 1<<30)
			resum(b, hdr, headerSize, hChecksum)
		}), ErrBlockSize, "block size", false},
		{"truncated inside a block", dynBase().bytes()[:11264-100],
			ErrTruncated, "BAT entry 3 at offset 1536+12", false},
		{"truncated inside the header", dynBase().bytes()[:1000],
			ErrTruncated, "footer data offset at offset 0+16", false},
		{"BAT past EOF", mutated(dynBase(), func(b []byte) {
			be.PutUint64(b[hdr+hTableOffset:], 1<<40)
			resum(b, hdr, headerSize, hChecksum)
		}), ErrTruncated, "dynamic header table offset", false},
		{"fixed size mismatch", func() []byte {
			b := fixedBase()
			be.PutUint64(b[64<<10+fCurSize:], 128<<10)
			resum(b, 64<<10, footerSize, fChecksum)
			return b
		}(), ErrSizeMismatch, "footer current size at offset 65536+48", false},
		{"dynamic BAT too small", mutated(dynBase(), func(b []byte) {
			be.PutUint32(b[hdr+hMaxEntries:], 2)
			resum(b, hdr, headerSize, hChecksum)
		}), ErrSizeMismatch, "max table entries at offset 512+28", false},
		{"unsupported disk type", mutated(dynBase(), func(b []byte) {
			o := len(b) - 512
			be.PutUint32(b[o+fDiskType:], 5)
			resum(b, o, footerSize, fChecksum)
		}), ErrUnsupported, "footer disk type", false},
		{"parent missing", child([16]byte{0xaa}, 0, `.\parent.vhd`),
			ErrBrokenChain, "parent locators at offset 512+576", false},
		{"parent uuid mismatch", child([16]byte{0xab}, 0, `.\parent.vhd`),
			ErrBrokenChain, "parent unique id at offset 512+40", true},
		{"parent time stamp mismatch", child([16]byte{0xaa}, 12345, `.\parent.vhd`),
			ErrBrokenChain, "parent time stamp at offset 512+56", true},
		{"parent is itself", child([16]byte{0xaa}, 0, `.\img.vhd`),
			ErrBrokenChain, "parent locators", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "img.vhd", c.img)
			if c.parent {
				writeFile(t, dir, "parent.vhd", parent)
			}
			d, err := Open(path)
			if err == nil {
				d.Close()
				t.Fatalf("Open succeeded, want %v", c.err)
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want errors.Is %v", err, c.err)
			}
			if msg := err.Error(); !strings.Contains(msg, c.field) || !strings.Contains(msg, path) {
				t.Fatalf("error %q does not name %q and the file", msg, c.field)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			info, ierr := Inspect(path)
			if !errors.Is(ierr, c.err) || info.Valid || info.Error == "" || info.FileSize != int64(len(c.img)) {
				t.Fatalf("Inspect = %+v, %v", info, ierr)
			}
			if c.err != ErrUnsupported && (info.Type == TypeRaw || info.Type == "" || info.UUID == "") {
				t.Fatalf("Inspect lost the type: %+v", info)
			}
		})
	}
}

// A dynamic disk whose tail footer is gone is refused by Open and
// OpenWritable; Inspect reads it through the copy at offset 0 and flags it.
func TestTailFooterMissing(t *testing.T) {
	img := dynBase().bytes()
	clear(img[len(img)-512:])
	path := writeFile(t, t.TempDir(), "cut.vhd", img)
	for _, open := range []func(string) (*Disk, error){Open, OpenWritable} {
		if d, err := open(path); !errors.Is(err, ErrTruncated) || d != nil {
			t.Fatalf("open: %v, want ErrTruncated", err)
		}
	}
	info, err := Inspect(path)
	if !errors.Is(err, ErrTruncated) || info.Valid || info.Type != TypeDynamic ||
		info.VirtualSize != 64<<10 || info.AllocatedBytes != 2*4096 {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
}

func TestRawAndRangeErrors(t *testing.T) {
	dir := t.TempDir()
	data := pattern(5120, 3)
	path := writeFile(t, dir, "disk.img", data)
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Type() != TypeRaw || d.Size() != 5120 || !bytes.Equal(readAll(t, d), data) {
		t.Fatalf("raw: type %s size %d", d.Type(), d.Size())
	}
	if _, err := d.WriteAt([]byte{1}, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("WriteAt on read-only: %v", err)
	}
	if _, err := d.ReadAt(make([]byte, 1), -1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("ReadAt(-1): %v", err)
	}
	w, err := OpenWritable(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt(make([]byte, 2), 5119); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("WriteAt past end: %v", err)
	}
	if _, err := CreateFixed(path, 1<<20); err == nil {
		t.Fatal("CreateFixed replaced an existing file")
	}
	if _, err := CreateFixed(filepath.Join(dir, "zero.vhd"), 0); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("CreateFixed(0): %v", err)
	}
	if info, err := Inspect(path); err != nil || info.Type != TypeRaw || !info.Valid || info.VirtualSize != 5120 {
		t.Fatalf("Inspect raw = %+v, %v", info, err)
	}
}
