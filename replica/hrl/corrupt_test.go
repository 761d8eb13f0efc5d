package hrl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// The corruption cases work on a log of 130 writes of 100 bytes:
// header, empty block #1 at 4096, 127 writes' data at 8192, block #2 at
// 20892, 3 writes' data at 24988, block #3 at 25288, EOL 29384.
const (
	cBlock2 = 8192 + 127*100
	cBlock3 = cBlock2 + 4096 + 300
	cEOL    = cBlock3 + 4096
)

func fixHeader(b []byte) {
	binary.LittleEndian.PutUint32(b[40:], naiveChecksum(b[:4096], 40))
}

func fixBlock(b []byte, off int) {
	binary.LittleEndian.PutUint32(b[off+12:], naiveChecksum(b[off:off+32], 12))
}

func fixEntry(b []byte, off int) {
	binary.LittleEndian.PutUint32(b[off+8:], naiveChecksum(b[off:off+32], 8))
}

func TestCorruption(t *testing.T) {
	le := binary.LittleEndian
	entry := func(block, i int) int { return block + 32 + 32*i }
	cases := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
		field  string
		offset int
	}{
		{"header reserved byte", func(b []byte) []byte { b[2000] ^= 1; return b }, ErrCorrupt, "Checksum", 40},
		{"cookie", func(b []byte) []byte { b[0] ^= 1; return b }, ErrCorrupt, "Cookie", 0},
		{"version 1", func(b []byte) []byte { le.PutUint32(b[8:], 0x00010000); fixHeader(b); return b }, ErrCorrupt, "LogFormatVersion", 8},
		{"metadata size", func(b []byte) []byte { le.PutUint32(b[56:], 1000); fixHeader(b); return b }, ErrCorrupt, "MetadataSize", 56},
		{"error code", func(b []byte) []byte { le.PutUint32(b[52:], 5); fixHeader(b); return b }, ErrCorrupt, "ErrorCode", 52},
		{"total entries", func(b []byte) []byte { le.PutUint64(b[96:], 129); fixHeader(b); return b }, ErrCorrupt, "TotalMetadataEntries", 96},
		{"block header", func(b []byte) []byte { b[cBlock3+8] ^= 1; return b }, ErrCorrupt, "metadata block Checksum", cBlock3 + 12},
		{"block too many entries", func(b []byte) []byte { le.PutUint32(b[cBlock3+8:], 128); fixBlock(b, cBlock3); return b }, ErrCorrupt, "ValidMetadataEntries", cBlock3 + 8},
		{"block back link", func(b []byte) []byte { le.PutUint64(b[cBlock3:], 1<<40); fixBlock(b, cBlock3); return b }, ErrCorrupt, "PreviousMetadataLocation", cBlock3},
		{"entry byte offset", func(b []byte) []byte { b[entry(cBlock2, 5)] ^= 1; return b }, ErrCorrupt, "metadata entry Checksum", entry(cBlock2, 5) + 8},
		{"entry length", func(b []byte) []byte {
			e := entry(cBlock2, 5)
			le.PutUint32(b[e+12:], 101)
			fixEntry(b, e)
			return b
		}, ErrCorrupt, "DataLength", cBlock2 + 32 + 12},
		{"entry operation", func(b []byte) []byte { e := entry(cBlock3, 2); b[e+20] = 2; fixEntry(b, e); return b }, ErrCorrupt, "MetaOperation", entry(cBlock3, 2) + 20},
		{"data byte", func(b []byte) []byte { b[8192+150] ^= 1; return b }, ErrCorrupt, "DataChecksum", entry(cBlock2, 1) + 21},
		{"last data byte", func(b []byte) []byte { b[cBlock3-1] ^= 0x80; return b }, ErrCorrupt, "DataChecksum", entry(cBlock3, 2) + 21},
		{"truncated by one byte", func(b []byte) []byte { return b[:len(b)-1] }, ErrTruncated, "EOLLocation", 44},
		{"truncated into header", func(b []byte) []byte { return b[:100] }, ErrTruncated, "header", 0},
		{"EOLLocation 0", func(b []byte) []byte { le.PutUint64(b[44:], 0); fixHeader(b); return b }, ErrNotClosed, "EOLLocation", 44},
		{"EOLLocation off by one", func(b []byte) []byte { le.PutUint64(b[44:], cEOL-1); fixHeader(b); return b }, ErrCorrupt, "metadata block Checksum", cBlock3 - 1 + 12},
		{"EOLLocation too small", func(b []byte) []byte { le.PutUint64(b[44:], 5000); fixHeader(b); return b }, ErrCorrupt, "EOLLocation", 44},
	}
	src, _ := buildLog(t, t.TempDir(), "c.hrl", Options{}, smallWrites(130, 100, 11))
	orig := readFile(t, src)
	if len(orig) != cEOL {
		t.Fatalf("test log is %d bytes, the cases assume %d", len(orig), cEOL)
	}
	if _, err := Open(src); err != nil {
		t.Fatalf("unmodified log: %v", err)
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mutate(append([]byte(nil), orig...))
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".hrl")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(path)
			if !errors.Is(err, c.want) || l != nil {
				t.Fatalf("Open = %v, %v; want %v", l, err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Field != c.field || e.Offset != int64(c.offset) || e.Path != path {
				t.Fatalf("error %q: want field %q at byte %d of %s", err, c.field, c.offset, path)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.field) || !strings.Contains(msg, fmt.Sprintf("at byte %d", c.offset)) || !strings.Contains(msg, path) {
				t.Fatalf("message %q does not name file, field %q and byte %d", msg, c.field, c.offset)
			}
			info, ierr := Inspect(path)
			if ierr == nil || info.Valid || info.Error == "" {
				t.Fatalf("Inspect = %+v, %v: want invalid with an error", info, ierr)
			}
		})
	}
}

func TestChainBroken(t *testing.T) {
	dir := t.TempDir()
	anchor := uuid.New()
	pa, ida := buildLog(t, dir, "a.hrl", Options{PreviousID: anchor}, smallWrites(2, 10, 1))
	pb, idb := buildLog(t, dir, "b.hrl", Options{PreviousID: ida}, smallWrites(2, 10, 2))
	stray := uuid.New()
	pc, _ := buildLog(t, dir, "c.hrl", Options{PreviousID: stray}, smallWrites(2, 10, 3))
	var logs []*Log
	for _, p := range []string{pa, pb, pc} {
		l, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
	}
	if err := CheckChain(logs[:2], anchor); err != nil {
		t.Fatalf("good chain: %v", err)
	}
	if err := CheckChain(logs[:2], uuid.Nil); err != nil {
		t.Fatalf("good chain without anchor: %v", err)
	}
	err := CheckChain(logs, anchor)
	if !errors.Is(err, ErrChainBroken) {
		t.Fatalf("CheckChain = %v, want ErrChainBroken", err)
	}
	for _, s := range []string{pc, pb, stray.String(), idb.String(), "PreviousUniqueId", "at byte 76"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not name %s", err, s)
		}
	}
	err = CheckChain(logs[1:2], anchor)
	if !errors.Is(err, ErrChainBroken) || !strings.Contains(err.Error(), anchor.String()) || !strings.Contains(err.Error(), ida.String()) {
		t.Fatalf("first-link break: %v", err)
	}
}

func TestInspectGood(t *testing.T) {
	prev := uuid.New()
	path, id := buildLog(t, t.TempDir(), "i.hrl", Options{PreviousID: prev}, smallWrites(3, 100, 1))
	info, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Entries: 3, DataBytes: 300, Closed: true, Valid: true, UniqueID: id, PreviousUniqueID: prev,
		Created: fixedNow, LastModified: fixedNow, MetadataSize: 4096, EOLLocation: 8192 + 300 + 4096,
		CurrentSize: 8192 + 300 + 4096, Version: "2.0", Creator: "asr"}
	if info != want {
		t.Fatalf("Inspect = %+v\nwant      %+v", info, want)
	}
}
