package vhdx

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asr-project/asr/replica/vhd/qemutest"
	"github.com/google/uuid"
)

// These tests read files made by qemu-img and changed by qemu-io (Debian's
// qemu-utils); they skip when the tools are missing, or fail under $CI.

const qemuSize = 64 << 20

// qemuImage makes a 64 MiB VHDX of subformat ("dynamic" or "fixed").
func qemuImage(t *testing.T, subformat string) string {
	t.Helper()
	qemutest.Need(t, "qemu-img")
	qemutest.Need(t, "qemu-io")
	path := filepath.Join(t.TempDir(), subformat+".vhdx")
	qemutest.CreateFormat(t, path, "vhdx", "subformat="+subformat, qemuSize)
	return path
}

// tool runs a qemu tool and returns its combined output and error.
func tool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(qemutest.Need(t, name), args...).CombinedOutput()
	return string(out), err
}

func mustTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := tool(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func mustRead(t *testing.T, path string) Info {
	t.Helper()
	info, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestQemuImages(t *testing.T) {
	for _, sub := range []string{"dynamic", "fixed"} {
		t.Run(sub, func(t *testing.T) {
			path := qemuImage(t, sub)
			info := mustRead(t, path)
			switch {
			case !strings.HasPrefix(info.Creator, "QEMU v"):
				t.Errorf("Creator %q, want QEMU v...", info.Creator)
			case info.DataWriteGUID == uuid.Nil || info.FileWriteGUID == uuid.Nil:
				t.Errorf("DataWriteGUID %s FileWriteGUID %s, want both non-zero", info.DataWriteGUID, info.FileWriteGUID)
			case !info.LogEmpty() || CheckReplayed(info) != nil:
				t.Errorf("LogGUID %s, want an empty log", info.LogGUID)
			case info.VirtualSize != qemuSize || info.LogicalSectorSize != 512:
				t.Errorf("VirtualSize %d LogicalSectorSize %d, want %d, 512", info.VirtualSize, info.LogicalSectorSize, qemuSize)
			case info.LogOffset != mib || info.LogLength != mib:
				t.Errorf("log %d bytes at %d, want qemu's 1 MiB at 1 MiB", info.LogLength, info.LogOffset)
			}
			var qi struct {
				VirtualSize int64 `json:"virtual-size"`
			}
			if err := json.Unmarshal([]byte(mustTool(t, "qemu-img", "info", "--output=json", "-f", "vhdx", path)), &qi); err != nil {
				t.Fatal(err)
			}
			if qi.VirtualSize != info.VirtualSize {
				t.Errorf("qemu-img info virtual-size %d, Read %d", qi.VirtualSize, info.VirtualSize)
			}
			checkRegionGUIDBytes(t, path)

			// A read-only open changes nothing.
			if again := mustRead(t, path); again != info {
				t.Errorf("after qemu-img info:\n got %+v\nwant %+v", again, info)
			}

			// What qemu 7.2 does (doc.go): a read-write open that only reads
			// leaves the headers alone; the first write of a session
			// rewrites them with a new FileWriteGuid and DataWriteGuid.
			mustTool(t, "qemu-io", "-f", "vhdx", "-c", "read 0 4k", path)
			if opened := mustRead(t, path); opened != info {
				t.Errorf("after a read-write open without writes:\n got %+v\nwant %+v", opened, info)
			}
			mustTool(t, "qemu-io", "-f", "vhdx", "-c", "write -P 0x5a 0 64k", path)
			written := mustRead(t, path)
			if written.DataWriteGUID == info.DataWriteGUID || written.FileWriteGUID == info.FileWriteGUID ||
				written.Sequence <= info.Sequence || written.LogGUID != uuid.Nil {
				t.Errorf("after a write:\n got %+v\n was %+v\nwant new DataWriteGUID and FileWriteGUID, higher Sequence, zero LogGUID", written, info)
			}
			mustTool(t, "qemu-io", "-f", "vhdx", "-c", "write -P 0x5b 1M 4k", path)
			if again := mustRead(t, path); again.DataWriteGUID == written.DataWriteGUID {
				t.Errorf("a second write session kept DataWriteGUID %s", again.DataWriteGUID)
			}
		})
	}
}

// checkRegionGUIDBytes: qemu stores the BAT region GUID in the same byte
// order the parser decodes (TestGUIDLayout pins it against the spec).
func checkRegionGUIDBytes(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b[regionTable1Offset:regionTable1Offset+regionTableSize], putGUIDBytes(regionBAT)) {
		t.Errorf("region table does not hold the BAT GUID as bytes %x", putGUIDBytes(regionBAT))
	}
}

// patchHeader rewrites the header at off with edit applied, checksum fixed.
func patchHeader(t *testing.T, path string, off int64, edit func(h []byte)) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := make([]byte, headerSize)
	if _, err := f.ReadAt(h, off); err != nil {
		t.Fatal(err)
	}
	edit(h)
	putChecksum(h, hChecksum)
	if _, err := f.WriteAt(h, off); err != nil {
		t.Fatal(err)
	}
}

// corruptAt flips one byte of path at off.
func corruptAt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func otherHeader(off int64) int64 {
	if off == header1Offset {
		return header2Offset
	}
	return header1Offset
}

func TestQemuHeaderSelection(t *testing.T) {
	path := qemuImage(t, "dynamic")
	mustTool(t, "qemu-io", "-f", "vhdx", "-c", "write 0 64k", path) // headers now differ
	cur := mustRead(t, path)
	other := otherHeader(cur.HeaderOffset)

	corruptAt(t, path, cur.HeaderOffset+1000) // inside the checksummed 4 KiB
	fallback := mustRead(t, path)
	if fallback.HeaderOffset != other || fallback.Sequence >= cur.Sequence {
		t.Fatalf("with the current header corrupt: header at %d sequence %d, want %d and below %d",
			fallback.HeaderOffset, fallback.Sequence, other, cur.Sequence)
	}

	corruptAt(t, path, other+hSequence)
	_, err := Read(path)
	checkErr(t, err, ErrCorrupt, "no valid header", "header 1 at offset 65536 has checksum", "header 2 at offset 131072 has checksum")
}

// TestQemuLogGUIDOnly sets LogGuid in the current header of a qemu file
// with no log entry carrying it: an empty log by the spec, and qemu opens
// it read-only without a replay, so CheckReplayed accepts it too.
func TestQemuLogGUIDOnly(t *testing.T) {
	path := qemuImage(t, "dynamic")
	cur := mustRead(t, path)
	logID := uuid.MustParse("0badc0de-1234-4567-89ab-cdef01234567")
	patchHeader(t, path, cur.HeaderOffset, func(h []byte) { copy(h[hLogGUID:], putGUIDBytes(logID)) })

	info := mustRead(t, path)
	if info.LogGUID != logID || info.HeaderOffset != cur.HeaderOffset || !info.LogEmpty() || CheckReplayed(info) != nil {
		t.Fatalf("after setting LogGuid only: %+v, CheckReplayed %v", info, CheckReplayed(info))
	}
	mustTool(t, "qemu-img", "info", "-f", "vhdx", path) // read-only: would fail if qemu saw a log to replay
}

// TestQemuDirtyLog makes the state a crash leaves between flushing a log
// entry and clearing LogGuid: qemu-io allocates a block (qemu logs the BAT
// update) and aborts; the entry stays in the log, and setting the current
// header's LogGuid to the entry's GUID makes it live again. Read must see
// it, qemu must agree (a read-only open refuses), and the advised
// `qemu-img check -r all` must replay it.
func TestQemuDirtyLog(t *testing.T) {
	path := qemuImage(t, "dynamic")
	if out, err := tool(t, "qemu-io", "-f", "vhdx", "-c", "write -P 0x5a 0 64k", "-c", "abort", path); err == nil {
		t.Fatalf("qemu-io abort exited 0:\n%s", out)
	}
	cur := mustRead(t, path)
	b := make([]byte, logHeaderSize)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(b, int64(cur.LogOffset))
	f.Close()
	if err != nil || string(b[:4]) != "loge" {
		t.Fatalf("no log entry at the log start (%q, %v): qemu no longer logs the BAT update?", b[:4], err)
	}
	logID := guidAt(b[leLogGUID:])
	patchHeader(t, path, cur.HeaderOffset, func(h []byte) { copy(h[hLogGUID:], putGUIDBytes(logID)) })

	dirty := mustRead(t, path)
	if dirty.LogEmpty() || dirty.LogGUID != logID {
		t.Fatalf("with a live log entry: %+v", dirty)
	}
	checkErr(t, CheckReplayed(dirty), ErrLogNotEmpty, "VHDX "+path+" has a non-empty log (LogGuid "+logID.String()+")",
		"qemu-img check -r all "+path)
	if out, err := tool(t, "qemu-img", "info", "-f", "vhdx", path); err == nil || !strings.Contains(out, "needs to be replayed") {
		t.Fatalf("qemu-img info (read-only) on the dirty file: err %v, want a refusal to open\n%s", err, out)
	}

	// qemu replays, clears LogGuid, and (qemu 7.2) counts the replay as a
	// write: DataWriteGuid changes, so asr sees the disk as changed.
	mustTool(t, "qemu-img", "check", "-r", "all", "-f", "vhdx", path)
	clean := mustRead(t, path)
	if !clean.LogEmpty() || clean.LogGUID != uuid.Nil || CheckReplayed(clean) != nil ||
		clean.DataWriteGUID == dirty.DataWriteGUID || clean.Sequence <= dirty.Sequence {
		t.Fatalf("after qemu-img check -r all:\n got %+v\n was %+v\nwant zero LogGUID, new DataWriteGUID, higher Sequence", clean, dirty)
	}
	mustTool(t, "qemu-io", "-r", "-f", "vhdx", "-c", "read -P 0x5a 0 64k", path)
}

func TestQemuNotVHDX(t *testing.T) {
	qemutest.Need(t, "qemu-img")
	for _, format := range []string{"qcow2", "raw", "vpc"} {
		path := filepath.Join(t.TempDir(), "d."+format)
		qemutest.CreateFormat(t, path, format, "", qemuSize)
		_, err := Read(path)
		checkErr(t, err, ErrNotVHDX, `want "vhdxfile"`)
	}
}

// TestQemuTruncated cuts qemu-made files inside their header section, log,
// BAT and metadata regions (qemu puts them in the first 4 MiB): ErrCorrupt,
// never a panic. Read reads no BAT, so a cut among the payload blocks
// after them is not its to see.
func TestQemuTruncated(t *testing.T) {
	for _, sub := range []string{"dynamic", "fixed"} {
		src := qemuImage(t, sub)
		for _, n := range []int64{8, 4096, header1Offset + 100, header2Offset + 100, regionTable1Offset + 100,
			mib - 1, mib + 4096, 2*mib + 100, 3 * mib, 3*mib + 64*kib, 4*mib - 1} {
			path := filepath.Join(t.TempDir(), "cut.vhdx")
			copyPrefix(t, src, path, n)
			_, err := Read(path)
			checkErr(t, err, ErrCorrupt)
		}
	}
}

// copyPrefix writes the first n bytes of src to dst.
func copyPrefix(t *testing.T, src, dst string, n int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.CopyN(out, in, n); err != nil {
		t.Fatal(err)
	}
}
