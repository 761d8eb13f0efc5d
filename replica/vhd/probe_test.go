package vhd

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/vhd/qemutest"
)

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": FormatAuto, "auto": FormatAuto, "vhd": FormatVHD, "RAW": FormatRaw} {
		if f, err := ParseFormat(in); err != nil || f != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, f, err)
		}
	}
	_, err := ParseFormat("qcow2")
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "auto, vhd or raw") {
		t.Fatalf("ParseFormat(qcow2): %v", err)
	}
	if _, err := OpenAs(filepath.Join(t.TempDir(), "x.vhd"), "qcow2"); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("OpenAs with format qcow2: %v", err)
	}
}

// within runs open in a goroutine and fails the test if it does not return
// within a second, so a blocking open fails instead of hanging the run.
func within(t *testing.T, what string, open func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- open() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Second):
		t.Fatalf("%s still blocked after 1s", what)
		return nil
	}
}

// refused opens path with Open, OpenWritable and Inspect as f and wants
// each refused with sentinel want, a *FormatError whose message names the
// file and every text, and (for regular files) the bytes unchanged.
func refused(t *testing.T, path string, f Format, want error, texts ...string) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	var before []byte
	if st.Mode().IsRegular() {
		before = readFile(t, path)
	}
	opens := map[string]func() error{
		"OpenAs":         func() error { return closeIfOpen(OpenAs(path, f)) },
		"OpenWritableAs": func() error { return closeIfOpen(OpenWritableAs(path, f)) },
		"InspectAs": func() error {
			info, err := InspectAs(path, f)
			if err != nil && (info.Valid || info.Error != err.Error()) {
				t.Errorf("InspectAs: %+v for error %v", info, err)
			}
			return err
		},
	}
	for name, open := range opens {
		err := within(t, name+" "+path, open)
		var fe *FormatError
		if !errors.Is(err, want) || !errors.As(err, &fe) {
			t.Fatalf("%s(%s, %q) = %v, want a *FormatError wrapping %v", name, path, f, err, want)
		}
		for _, s := range append(texts, path) {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("%s: %q does not say %q", name, err, s)
			}
		}
	}
	if before != nil && !bytes.Equal(before, readFile(t, path)) {
		t.Fatalf("%s changed after a refusal", path)
	}
}

func closeIfOpen(d *Disk, err error) error {
	if d != nil {
		d.Close()
	}
	return err
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opened opens path as f and wants a disk of type typ and size.
func opened(t *testing.T, path string, f Format, typ Type, size int64) {
	t.Helper()
	for _, open := range []func(string, Format) (*Disk, error){OpenAs, OpenWritableAs} {
		d, err := open(path, f)
		if err != nil {
			t.Fatalf("open %s as %q: %v", path, f, err)
		}
		if d.Type() != typ || d.Size() != size {
			t.Fatalf("open %s as %q: %s of %d bytes, want %s of %d", path, f, d.Type(), d.Size(), typ, size)
		}
		d.Close()
	}
	if info, err := InspectAs(path, f); err != nil || !info.Valid || info.Type != typ {
		t.Fatalf("InspectAs(%s, %q) = %+v, %v", path, f, info, err)
	}
}

func TestNotRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.vhd")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock.img")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, c := range []struct{ path, kind string }{
		{fifo, "a FIFO"}, {sock, "a socket"}, {"/dev/null", "a character device"}, {dir, "a directory"},
	} {
		for _, f := range []Format{FormatAuto, FormatVHD, FormatRaw} {
			refused(t, c.path, f, ErrNotImage, c.kind, "not a regular file")
		}
	}
}

// Each foreign format, made by qemu-img, is refused by name whatever the
// file is called, unless the operator says it is raw.
func TestForeignFormats(t *testing.T) {
	qemutest.Need(t, "qemu-img")
	dir := t.TempDir()
	for _, c := range []struct{ format, opts, name string }{
		{"qcow2", "", "qcow2 image"},
		{"vhdx", "", "VHDX image"},
		{"vmdk", "", "VMDK image"},
		{"vmdk", "subformat=monolithicFlat", "VMDK descriptor"},
		{"qed", "", "QED image"},
		{"vdi", "", "VDI image"},
	} {
		src := filepath.Join(dir, c.format+"-"+strings.TrimPrefix(c.opts, "subformat="))
		qemutest.CreateFormat(t, src, c.format, c.opts, 1<<20)
		data := readFile(t, src)
		for _, name := range []string{"d." + c.format, "d.vhd", "d.img", "D.RAW"} {
			p := writeFile(t, dir, name, data)
			for _, f := range []Format{FormatAuto, FormatVHD} {
				refused(t, p, f, ErrForeign, c.name, "qemu-img convert -O vpc")
			}
		}
		// FormatRaw is honoured once the size is whole sectors (qemu's
		// qcow2 is 196616 bytes; trailing zeros keep every format valid).
		if len(data)%512 != 0 {
			refused(t, src, FormatRaw, ErrSizeMismatch, fmt.Sprintf("have %d bytes", len(data)))
			data = append(data, make([]byte, 512-len(data)%512)...)
		}
		padded := writeFile(t, dir, "padded."+c.format, data)
		refused(t, padded, FormatAuto, ErrForeign, c.name)
		opened(t, padded, FormatRaw, TypeRaw, int64(len(data)))
	}
}

// Damaged VHDs made by qemu-img are refused with their first bad field,
// never read as a raw disk of the file's size.
func TestDamagedVHD(t *testing.T) {
	qemutest.Need(t, "qemu-img")
	dir := t.TempDir()
	const size = 1 << 20
	fixedPath, dynPath := filepath.Join(dir, "fixed.vhd"), filepath.Join(dir, "dyn.vhd")
	qemutest.Create(t, fixedPath, "fixed", size)
	qemutest.Create(t, dynPath, "dynamic", size)
	fixed, dyn := readFile(t, fixedPath), readFile(t, dynPath)
	opened(t, fixedPath, FormatAuto, TypeFixed, size)
	opened(t, dynPath, FormatAuto, TypeDynamic, size)

	flip := func(off int) []byte { b := bytes.Clone(fixed); b[off] ^= 0x10; return b }
	resized := flip(size + fCurSize + 5)
	resum(resized, size, footerSize, fChecksum)
	random := make([]byte, 64<<10)
	rand.New(rand.NewSource(1)).Read(random)
	for _, c := range []struct {
		name  string
		img   []byte
		err   error
		texts []string
		other error // as disk.bin in FormatAuto: ErrUnknownFormat without a footer cookie
	}{
		{"fixed cut by 100 bytes", fixed[:len(fixed)-100], ErrTruncated,
			[]string{"footer cookie at offset 1048476", "not a multiple of 512 (cut short?)"}, ErrUnknownFormat},
		{"fixed cookie byte flipped", flip(size + 3), ErrBadCookie,
			[]string{"footer cookie at offset 1048576", `have "conuctix"`}, ErrUnknownFormat},
		{"fixed checksum byte flipped", flip(size + fChecksum + 2), ErrBadChecksum,
			[]string{"footer checksum at offset 1048576+64"}, ErrBadChecksum},
		{"fixed size byte flipped", flip(size + fCurSize + 5), ErrBadChecksum,
			[]string{"footer checksum at offset 1048576+64"}, ErrBadChecksum},
		{"fixed size byte flipped, checksum redone", resized, ErrSizeMismatch,
			[]string{"footer current size at offset 1048576+48"}, ErrSizeMismatch},
		{"dynamic tail footer gone", dyn[:len(dyn)-512], ErrTruncated,
			[]string{"only the copy at offset 0"}, ErrTruncated},
		{"random bytes", random, ErrBadCookie, []string{"footer cookie at offset 65024"}, ErrUnknownFormat},
		{"empty", nil, ErrTruncated, []string{"cannot hold a 512-byte footer"}, ErrUnknownFormat},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "disk.vhd", c.img)
			refused(t, p, FormatAuto, c.err, c.texts...)
			refused(t, p, FormatVHD, c.err, c.texts...)
			q := writeFile(t, t.TempDir(), "disk.AVHD", c.img)
			refused(t, q, FormatAuto, c.err, c.texts...)
			other := writeFile(t, t.TempDir(), "disk.bin", c.img)
			refused(t, other, FormatVHD, c.err, c.texts...)
			if c.other == c.err {
				refused(t, other, FormatAuto, c.err, c.texts...)
			} else {
				refused(t, other, FormatAuto, c.other, "can't tell the format", "--format raw")
			}
		})
	}
	// Inspect still describes the tail-less dynamic disk it refuses.
	p := writeFile(t, dir, "cut.vhd", dyn[:len(dyn)-512])
	if info, err := Inspect(p); !errors.Is(err, ErrTruncated) || info.Type != TypeDynamic || info.VirtualSize != size {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
}

func TestRawRules(t *testing.T) {
	qemutest.Need(t, "qemu-img")
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		size int
		text string
	}{{"empty.raw", 0, "have 0 bytes"}, {"odd.img", 1000, "have 1000 bytes"}} {
		p := writeFile(t, dir, c.name, pattern(c.size, 5))
		for _, f := range []Format{FormatAuto, FormatRaw} {
			refused(t, p, f, ErrSizeMismatch, "raw image size", c.text, "multiple of 512")
		}
	}

	img := filepath.Join(dir, "DISK.IMG")
	qemutest.CreateFormat(t, img, "raw", "", 1<<20)
	opened(t, img, FormatAuto, TypeRaw, 1<<20)
	opened(t, img, FormatRaw, TypeRaw, 1<<20)
	refused(t, img, FormatVHD, ErrBadCookie, "footer cookie at offset 1048064")

	bin := writeFile(t, dir, "disk.bin", pattern(8192, 6))
	refused(t, bin, FormatAuto, ErrUnknownFormat, "can't tell the format of "+bin, "name it .vhd, .raw or .img, or pass --format raw")
	opened(t, bin, FormatRaw, TypeRaw, 8192)
	d, err := OpenAs(bin, FormatRaw)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, d); !bytes.Equal(got, pattern(8192, 6)) {
		t.Fatal("raw read differs from the file")
	}
	d.Close()

	// Content wins over a raw name: a valid footer makes a VHD; FormatRaw
	// still reads the whole file, footer included.
	vhdPath := filepath.Join(dir, "fixed.vhd")
	qemutest.Create(t, vhdPath, "fixed", 1<<20)
	asImg := writeFile(t, dir, "fixed.img", readFile(t, vhdPath))
	opened(t, asImg, FormatAuto, TypeFixed, 1<<20)
	opened(t, asImg, FormatRaw, TypeRaw, 1<<20+512)
	// A damaged footer in a .img is refused, pointing at --format raw.
	b := readFile(t, vhdPath)
	b[len(b)-512+fChecksum] ^= 1
	bad := writeFile(t, dir, "bad.img", b)
	refused(t, bad, FormatAuto, ErrBadChecksum, "footer checksum", "pass --format raw")
	opened(t, bad, FormatRaw, TypeRaw, 1<<20+512)
}
