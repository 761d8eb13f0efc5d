package vhdx

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// pinnedHeader is header 2 of the pinned vector, byte by byte ([MS-VHDX]
// 2.2.2), written out by hand rather than by the test helpers. Its CRC-32C
// (with the checksum field zero) and the region table's were computed with
// an independent bitwise CRC-32C (reflected polynomial 0x82F63B78).
const (
	pinnedHeader = "68656164" + // "head"
		"00000000" + // checksum, filled in below
		"0700000000000000" + // SequenceNumber 7
		"67452301ab89efcd0123456789abcdef" + // FileWriteGuid 01234567-89ab-cdef-0123-456789abcdef
		"98badcfe54761032fedcba9876543210" + // DataWriteGuid fedcba98-7654-3210-fedc-ba9876543210
		"00000000000000000000000000000000" + // LogGuid: empty log
		"0000" + "0100" + // LogVersion 0, Version 1
		"00001000" + // LogLength 1 MiB
		"0000100000000000" // LogOffset 1 MiB
	pinnedHeaderCRC      = 0x1443e796
	pinnedRegionTableCRC = 0xc66b8cae
)

func TestPinnedVector(t *testing.T) {
	if c := crc32.Checksum([]byte("123456789"), castagnoli); c != 0xe3069283 {
		t.Fatalf("CRC-32C check value 0x%08x, want 0xe3069283", c)
	}
	raw, err := hex.DecodeString(pinnedHeader)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, headerSize)
	copy(h, raw)
	if c := checksum(h, hChecksum); c != pinnedHeaderCRC {
		t.Fatalf("header checksum 0x%08x, want 0x%08x", c, pinnedHeaderCRC)
	}
	binary.LittleEndian.PutUint32(h[hChecksum:], pinnedHeaderCRC)

	l := baseLayout()
	if c := binary.LittleEndian.Uint32(regionBlock(l.regions)[4:]); c != pinnedRegionTableCRC {
		t.Fatalf("region table checksum 0x%08x, want 0x%08x", c, pinnedRegionTableCRC)
	}
	s := l.build()
	s.put(header2Offset, h) // replaces the helper-built header 2
	got, err := Parse(s, s.size, "test.vhdx")
	if err != nil {
		t.Fatal(err)
	}
	want := Info{
		Path:              "test.vhdx",
		Creator:           "asr test ✓",
		HeaderOffset:      131072,
		Sequence:          7,
		FileWriteGUID:     uuid.MustParse("01234567-89ab-cdef-0123-456789abcdef"),
		DataWriteGUID:     uuid.MustParse("fedcba98-7654-3210-fedc-ba9876543210"),
		LogOffset:         1 << 20,
		LogLength:         1 << 20,
		VirtualSize:       64 << 20,
		LogicalSectorSize: 512,
		BlockSize:         32 << 20,
		BATOffset:         3 << 20,
		BATLength:         1 << 20,
		MetadataOffset:    2 << 20,
		MetadataLength:    1 << 20,
	}
	if got != want {
		t.Fatalf("Parse:\n got %+v\nwant %+v", got, want)
	}
	if !got.LogEmpty() || CheckReplayed(got) != nil {
		t.Fatalf("LogEmpty %v, CheckReplayed %v; want true, nil", got.LogEmpty(), CheckReplayed(got))
	}
	if g := got.DataWriteGUID.String(); g != "fedcba98-7654-3210-fedc-ba9876543210" {
		t.Fatalf("DataWriteGUID prints %s", g)
	}
}

// TestGUIDLayout: the spec prints the BAT region GUID as
// 2DC27766-F623-4200-9D64-115E9BFD4A08 and stores it as the bytes below
// (Windows GUID layout, as qemu-img writes it too; see TestQemuImages).
func TestGUIDLayout(t *testing.T) {
	disk, _ := hex.DecodeString("6677c22d23f600429d64115e9bfd4a08")
	if g := guidAt(disk); g != regionBAT || g.String() != "2dc27766-f623-4200-9d64-115e9bfd4a08" {
		t.Fatalf("guidAt = %s, want 2dc27766-f623-4200-9d64-115e9bfd4a08", g)
	}
	if b := putGUIDBytes(regionBAT); hex.EncodeToString(b) != hex.EncodeToString(disk) {
		t.Fatalf("putGUIDBytes = %x", b)
	}
}

func TestHeaderSelection(t *testing.T) {
	otherData := uuid.MustParse("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
	flip := func(off int64) func(*layout, *sparse) {
		return func(_ *layout, s *sparse) { s.put(off, []byte{0xff}) }
	}
	for _, c := range []struct {
		name     string
		edit     func(*layout)
		corrupt  func(*layout, *sparse)
		wantOff  int64
		wantSeq  uint64
		wantErr  error
		wantText []string
	}{
		{name: "higher sequence wins", wantOff: header2Offset, wantSeq: 7},
		{name: "header 1 higher", edit: func(l *layout) { l.headers[0].seq = 8 }, wantOff: header1Offset, wantSeq: 8},
		{name: "unsigned compare", edit: func(l *layout) { l.headers[0].seq = math.MaxUint64 }, wantOff: header1Offset, wantSeq: math.MaxUint64},
		{name: "current checksum bad", corrupt: flip(header2Offset + 100), wantOff: header1Offset, wantSeq: 6},
		{name: "current signature bad", corrupt: flip(header2Offset), wantOff: header1Offset, wantSeq: 6},
		{name: "older checksum bad", corrupt: flip(header1Offset + 4000), wantOff: header2Offset, wantSeq: 7},
		{name: "bad older header's fields ignored", edit: func(l *layout) { l.headers[0].version = 9 }, wantOff: header2Offset, wantSeq: 7},
		{name: "both bad", wantErr: ErrCorrupt,
			corrupt:  func(l *layout, s *sparse) { flip(header1Offset+8)(l, s); flip(header2Offset+1)(l, s) },
			wantText: []string{"no valid header", "header 1 at offset 65536 has checksum", `header 2 at offset 131072 has signature "h\xffad"`}},
		{name: "equal and identical", edit: func(l *layout) { l.headers[0] = l.headers[1] }, wantOff: header1Offset, wantSeq: 7},
		{name: "equal but different", wantErr: ErrCorrupt, wantText: []string{"both valid with sequence number 7 but differ"},
			edit: func(l *layout) { l.headers[0].seq = 7; l.headers[0].dataWrite = otherData }},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := baseLayout()
			if c.edit != nil {
				c.edit(l)
			}
			s := l.build()
			if c.corrupt != nil {
				c.corrupt(l, s)
			}
			info, err := Parse(s, s.size, "t.vhdx")
			checkErr(t, err, c.wantErr, c.wantText...)
			if c.wantErr == nil && (info.HeaderOffset != c.wantOff || info.Sequence != c.wantSeq) {
				t.Fatalf("header at %d sequence %d, want %d, %d", info.HeaderOffset, info.Sequence, c.wantOff, c.wantSeq)
			}
		})
	}
}

func TestHeaderFields(t *testing.T) {
	for _, c := range []struct {
		name     string
		edit     func(h *hdr)
		wantErr  error
		wantText string
	}{
		{"version 2", func(h *hdr) { h.version = 2 }, ErrUnsupported, "header 2 Version at offset 131072: version 2"},
		{"version 0", func(h *hdr) { h.version = 0 }, ErrUnsupported, "version 0"},
		{"log version 1", func(h *hdr) { h.logVersion = 1 }, ErrUnsupported, "log version 1"},
		{"log offset 0", func(h *hdr) { h.logOffset = 0 }, ErrCorrupt, "LogOffset 0"},
		{"log offset unaligned", func(h *hdr) { h.logOffset = mib + 512 }, ErrCorrupt, "must be multiples of 1 MiB"},
		{"log length unaligned", func(h *hdr) { h.logLength = 4096 }, ErrCorrupt, "LogLength 4096"},
		{"log past end", func(h *hdr) { h.logOffset = 4 * mib }, ErrCorrupt, "ends past the end of the 4194304-byte file"},
		{"log offset huge", func(h *hdr) { h.logOffset = 1 << 63 }, ErrCorrupt, "ends past the end"},
		{"log length huge", func(h *hdr) { h.logLength = 4095 * mib }, ErrCorrupt, "ends past the end"},
		{"log length 0", func(h *hdr) { h.logLength = 0 }, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := baseLayout()
			c.edit(&l.headers[1])
			_, err := l.parse()
			checkErr(t, err, c.wantErr, c.wantText)
		})
	}
}

func TestCheckReplayed(t *testing.T) {
	logID := uuid.MustParse("0badc0de-0000-4000-8000-000000000001")
	l := baseLayout()
	l.headers[1].log = logID
	s := l.build()
	s.putLog(mib, mib, 0, logEntry(logID, 1, 4*kib))
	for path, q := range map[string]string{
		"/var/lib/vm/d.vhdx":    "/var/lib/vm/d.vhdx",
		"/var/lib/my vm/d.vhdx": "'/var/lib/my vm/d.vhdx'",
		"/a/it's.vhdx":          `'/a/it'\''s.vhdx'`,
	} {
		info, err := Parse(s, s.size, path)
		if err != nil {
			t.Fatal(err)
		}
		if info.LogEmpty() || info.LogGUID != logID {
			t.Fatalf("LogEmpty %v LogGUID %s, want false, %s", info.LogEmpty(), info.LogGUID, logID)
		}
		checkErr(t, CheckReplayed(info), ErrLogNotEmpty,
			"VHDX "+path+" has a non-empty log (LogGuid 0badc0de-0000-4000-8000-000000000001): it was not closed cleanly",
			"run `qemu-img check -r all "+q+"`")
	}
}

func TestNotVHDX(t *testing.T) {
	qcow2 := append([]byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 1<<20)...)
	vhd := append(make([]byte, 1<<20), []byte("conectix")...)
	for _, c := range []struct {
		name string
		data []byte
		text string
	}{
		{"empty", nil, "the file is 0 bytes, too short"},
		{"7 bytes", []byte("vhdxfil"), "the file is 7 bytes"},
		{"qcow2", qcow2, `signature "QFI\xfb\x00\x00\x00\x03", want "vhdxfile"`},
		{"raw zeros", make([]byte, 2<<20), `signature "\x00\x00`},
		{"vhd", vhd, "not a VHDX file (give the path of a .vhdx disk; `qemu-img info"},
		{"upper case", []byte("VHDXFILE"), "want \"vhdxfile\""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(path)
			checkErr(t, err, ErrNotVHDX, c.text)
		})
	}
	_, err := Read(t.TempDir())
	checkErr(t, err, ErrNotVHDX, "is not a regular file")
	_, err = Read(filepath.Join(t.TempDir(), "missing.vhdx"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotVHDX) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist only", err)
	}
}

// TestTruncated cuts the pinned layout at every structure boundary: each
// cut is ErrCorrupt, never a panic or a success.
func TestTruncated(t *testing.T) {
	for _, size := range []int64{8, 9, 520, 64 * kib, 64*kib + 100, 128*kib + 4095, 192 * kib, mib - 1,
		mib, mib + 1, 2*mib - 1, 2 * mib, 2*mib + 64*kib + 3, 3 * mib, 4*mib - 1} {
		s := baseLayout().build()
		s.size = size
		path := s.file(t)
		_, err := Read(path)
		checkErr(t, err, ErrCorrupt)
		// A file that shrinks while read: the reader ends before a
		// structure Parse reads (it reads no BAT, so a cut in the BAT
		// region is not seen this way).
		_, err = Parse(s, 4*mib, "shrinking")
		if size < 2*mib+64*kib+5*4*kib {
			checkErr(t, err, ErrCorrupt, "the file ended early")
		} else if err != nil {
			t.Fatalf("cut at %d, read as 4 MiB: %v", size, err)
		}
	}
}

func TestRead(t *testing.T) {
	path := baseLayout().build().file(t)
	info, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != path || info.DataWriteGUID != testDataWrite || info.VirtualSize != 64*mib {
		t.Fatalf("Read = %+v", info)
	}
}

// failingReader fails every read at or past off with err.
type failingReader struct {
	*sparse
	off int64
	err error
}

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.off {
		return 0, r.err
	}
	return r.sparse.ReadAt(p, off)
}

// TestIOError: a read error is returned with the file, structure and
// offset, and wraps no format sentinel.
func TestIOError(t *testing.T) {
	fire := errors.New("disk on fire")
	s := baseLayout().build()
	_, err := Parse(failingReader{s, regionTable1Offset, fire}, s.size, "d.vhdx")
	if !errors.Is(err, fire) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotVHDX) ||
		err.Error() != "vhdx d.vhdx: reading region table at offset 196608: disk on fire" {
		t.Fatalf("error %v", err)
	}
}

// checkErr fails unless err wraps want (nil: err is nil) and its message
// holds every text.
func checkErr(t *testing.T, err, want error, texts ...string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want one wrapping %q", err, want)
	}
	for _, s := range texts {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not contain %q", err, s)
		}
	}
}
