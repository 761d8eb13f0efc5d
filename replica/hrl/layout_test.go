package hrl

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
)

// TestGolden builds a three-write log and checks every field at the offset
// HRL.md gives it, with checksums recomputed here.
func TestGolden(t *testing.T) {
	le := binary.LittleEndian
	prev := uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")
	dwg := uuid.MustParse("01020304-0506-0708-090a-0b0c0d0e0f10")
	ws := []write{
		{off: 0, data: bytes.Repeat([]byte{0xAB}, 512)},
		{off: 1 << 20, data: []byte("hello, replica")},
		{off: 7, data: []byte{1, 2, 3}},
	}
	path, id := buildLog(t, t.TempDir(), "g.hrl", Options{PreviousID: prev, DataWriteGUID: dwg}, ws)
	b := readFile(t, path)
	const dataLen = 512 + 14 + 3
	block2 := 4096 + 4096 + dataLen
	if len(b) != block2+4096 {
		t.Fatalf("file size %d, want %d", len(b), block2+4096)
	}
	stamp := uint32(fixedNow.Unix() - 946684800)
	u32 := func(off int) uint32 { return le.Uint32(b[off:]) }
	u64 := func(off int) uint64 { return le.Uint64(b[off:]) }
	checks := []struct {
		name       string
		have, want uint64
	}{
		{"LogFormatVersion@8", uint64(u32(8)), 0x00020000},
		{"TimeStamp@12", uint64(u32(12)), uint64(stamp)},
		{"CreatorVersion@20", uint64(u32(20)), 0x00010000},
		{"OriginalSize@24", u64(24), 8192},
		{"CurrentSize@32", u64(32), uint64(len(b))},
		{"Checksum@40", uint64(u32(40)), uint64(naiveChecksum(b[:4096], 40))},
		{"EOLLocation@44", u64(44), uint64(len(b))},
		{"ErrorCode@52", uint64(u32(52)), 0},
		{"MetadataSize@56", uint64(u32(56)), 4096},
		{"LastModifiedTimeStamp@92", uint64(u32(92)), uint64(stamp)},
		{"TotalMetadataEntries@96", u64(96), 3},
		{"FileType@104", uint64(u32(104)), 0},
		{"Flags@108", uint64(le.Uint16(b[108:])), 0},
		// block #1: empty, right after the header
		{"block1 PreviousMetadataLocation", u64(4096), 0},
		{"block1 ValidMetadataEntries", uint64(u32(4096 + 8)), 0},
		{"block1 Checksum", uint64(u32(4096 + 12)), uint64(naiveChecksum(b[4096:4096+32], 12))},
		// block #2: after the data, pointing back to block #1
		{"block2 PreviousMetadataLocation", u64(block2), uint64(block2 - 4096)},
		{"block2 ValidMetadataEntries", uint64(u32(block2 + 8)), 3},
		{"block2 Checksum", uint64(u32(block2 + 12)), uint64(naiveChecksum(b[block2:block2+32], 12))},
	}
	for _, c := range checks {
		if c.have != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.have, c.want)
		}
	}
	if got := string(b[0:8]); got != "msctlog\x00" {
		t.Errorf("Cookie = %q", got)
	}
	if got := b[8:12]; !bytes.Equal(got, []byte{0, 0, 2, 0}) {
		t.Errorf("LogFormatVersion bytes % x, want 00 00 02 00", got)
	}
	if got := string(b[16:20]); got != "asr\x00" {
		t.Errorf("CreatorApplication = %q", got)
	}
	// GUIDs in the Windows layout: first three groups little-endian.
	wantPrev := []byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	if got := b[76:92]; !bytes.Equal(got, wantPrev) {
		t.Errorf("PreviousUniqueId bytes % x, want % x", got, wantPrev)
	}
	wantDWG := []byte{4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16}
	if got := b[110:126]; !bytes.Equal(got, wantDWG) {
		t.Errorf("Vhd2DataWriteGuid bytes % x, want % x", got, wantDWG)
	}
	if got := b[60:76]; got[3] != id[0] || got[0] != id[3] || got[5] != id[4] || got[7] != id[6] || !bytes.Equal(got[8:], id[8:]) {
		t.Errorf("UniqueId bytes % x do not hold %s in GUID layout", got, id)
	}
	if !bytes.Equal(b[126:4096], make([]byte, 4096-126)) {
		t.Error("header Reserved is not all zero")
	}
	if !bytes.Equal(b[4096+16:8192], make([]byte, 4096-16)) {
		t.Error("block #1 past its header fields is not all zero")
	}
	// data, back to back after block #1
	pos := 8192
	for i, w := range ws {
		if !bytes.Equal(b[pos:pos+len(w.data)], w.data) {
			t.Errorf("write %d data not at byte %d", i, pos)
		}
		e := b[block2+32+32*i:][:32]
		var sum uint32
		for _, v := range w.data {
			sum += uint32(v)
		}
		entry := []struct {
			name       string
			have, want uint64
		}{
			{"ByteOffset@0", le.Uint64(e[0:]), uint64(w.off)},
			{"Checksum@8", uint64(le.Uint32(e[8:])), uint64(naiveChecksum(e, 8))},
			{"DataLength@12", uint64(le.Uint32(e[12:])), uint64(len(w.data))},
			{"TimeStamp@16", uint64(le.Uint32(e[16:])), uint64(stamp)},
			{"MetaOperation@20", uint64(e[20]), 1},
			{"DataChecksum@21", uint64(le.Uint32(e[21:])), uint64(^sum)},
			{"Location@25", uint64(e[25]), 0},
		}
		for _, c := range entry {
			if c.have != c.want {
				t.Errorf("entry %d %s = %#x, want %#x", i, c.name, c.have, c.want)
			}
		}
		if !bytes.Equal(e[26:32], make([]byte, 6)) {
			t.Errorf("entry %d Reserved not zero", i)
		}
		pos += len(w.data)
	}
	if !bytes.Equal(b[block2+32+3*32:], make([]byte, 4096-32-3*32)) {
		t.Error("block #2 past its 3 entries is not all zero")
	}
}

func TestByteSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, 1023, 1024, 1025, 4096, 65537, 1 << 20} {
		for _, fill := range []string{"random", "ff"} {
			b := make([]byte, n)
			for i := range b {
				if fill == "ff" {
					b[i] = 0xFF
				} else {
					b[i] = byte(rng.Uint32())
				}
			}
			var want uint32
			for _, v := range b {
				want += uint32(v)
			}
			if got := byteSum(b); got != want {
				t.Errorf("byteSum(%d %s bytes) = %d, want %d", n, fill, got, want)
			}
		}
	}
}

func TestGUIDRoundTrip(t *testing.T) {
	u := uuid.New()
	b := make([]byte, 16)
	putGUID(b, u)
	if getGUID(b) != u {
		t.Fatalf("GUID %s did not survive the Windows layout: % x", u, b)
	}
}

func TestStampClamps(t *testing.T) {
	if stamp(unstamp(12345)) != 12345 {
		t.Error("stamp/unstamp do not round-trip")
	}
	if stamp(unstamp(0).Add(-1e9)) != 0 {
		t.Error("times before 2000 do not clamp to 0")
	}
}

// TestFirstBlockWithEntries: a log whose first block lists writes (their
// data right after the header, as HRL.md's replay rule allows, and as a
// writer other than asr may do) reads back.
func TestFirstBlockWithEntries(t *testing.T) {
	data := []byte("0123456789")
	blockOff := 4096 + len(data)
	b := make([]byte, blockOff+512)
	copy(b[4096:], data)
	var sum uint32
	for _, v := range data {
		sum += uint32(v)
	}
	marshalBlock(b[blockOff:], 0, []rawEntry{{Off: 4096, Len: 10, DataSum: ^sum}})
	h := header{Cookie: cookie, Version: Version2, MetadataSize: 512, EOL: uint64(len(b)), CurrentSize: uint64(len(b)), TotalEntries: 1}
	h.marshal(b[:4096])
	l, _, err := readLog(bytes.NewReader(b), int64(len(b)), "first.hrl", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 1 || l.Entries[0] != (Entry{Off: 4096, Len: 10, FileOff: 4096, Time: unstamp(0)}) {
		t.Fatalf("entries %+v", l.Entries)
	}
}
