package tracker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// marked says the dirty map covers [off, off+n).
func marked(t *testing.T, disk string, off, n int64) bool {
	t.Helper()
	return covers(t, ReadDirty, disk, off, n)
}

// covers says the map read by read (a dirty map or a resync set) covers
// [off, off+n).
func covers(t *testing.T, read func(string) (*Dirty, error), disk string, off, n int64) bool {
	t.Helper()
	m, err := read(disk)
	if err != nil {
		t.Fatal(err)
	}
	for g := off / m.Granule; g <= (off+n-1)/m.Granule; g++ {
		if m.Bits[g/64]&(1<<(g%64)) == 0 {
			return false
		}
	}
	return true
}

func write(t *testing.T, d *Disk, off int64, n int, b byte) {
	t.Helper()
	if _, err := d.WriteAt(fill(n, b), off); err != nil {
		t.Fatalf("guest write at %d: %v", off, err)
	}
}

func TestLogFailureKeepsTheGuestRunning(t *testing.T) {
	spec := modelDisk(t)
	tr, err := Start([]DiskSpec{spec}, modelOpt)
	if err != nil {
		t.Fatal(err)
	}
	d := tr.Disks()[0]
	write(t, d, 0, 8192, 0x01) // in the log that is about to fail
	d.log.Close()              // the log's file system goes away
	write(t, d, 1<<20, 4096, 0x02)
	write(t, d, 3<<20, 4096, 0x03)
	if err := d.Flush(); err != nil {
		t.Fatalf("guest flush after the log failed: %v", err)
	}
	if !strings.Contains(d.Stats().Degraded, "could not be written") {
		t.Fatalf("reason %q", d.Stats().Degraded)
	}
	for _, r := range [][2]int64{{0, 8192}, {1 << 20, 4096}, {3 << 20, 4096}} {
		if !marked(t, spec.Path, r[0], r[1]) {
			t.Fatalf("dirty map misses [%d, +%d)", r[0], r[1])
		}
	}
	if m, _ := ReadDirty(spec.Path); m.FromSeq != 1 {
		t.Fatalf("FromSeq %d, want 1 (the failed log)", m.FromSeq)
	}
	if logs, _ := Logs(spec.Path); len(logs) != 0 {
		t.Fatalf("the failed log is still there: %v", logs)
	}
	sealed, err := tr.Rotate()
	if err != nil || len(sealed) != 0 {
		t.Fatalf("rotate of a degraded disk: %v, %v", sealed, err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// The disk has every write; a restarted tracker stays degraded, and a
	// kill keeps what the map had not yet persisted, through the activity log.
	same(t, "disk", diskImage(t, spec.Path)[1<<20:1<<20+4096], fill(4096, 0x02))
	tr, err = Start([]DiskSpec{spec}, modelOpt)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Disks()[0].Stats().Degraded == "" {
		t.Fatal("restarted tracker logs a degraded disk again")
	}
	write(t, tr.Disks()[0], 2<<20, 4096, 0x04) // not flushed
	snap := crash(t, tr)
	snap.restore(t, spec.Path)
	if _, err := Recover(spec); err != nil {
		t.Fatal(err)
	}
	if !marked(t, spec.Path, 2<<20, 4096) {
		t.Fatal("a write before the kill is missing from the map after recovery")
	}
}

func TestLogsPastHalfTheDiskStopLogging(t *testing.T) {
	spec := modelDisk(t)
	tr, err := Start([]DiskSpec{spec}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	d := tr.Disks()[0]
	for i := range 5 { // 5 MiB of logs for a 4 MiB disk
		write(t, d, 0, 1<<20, byte(i))
	}
	if !strings.Contains(d.Stats().Degraded, "half the disk") {
		t.Fatalf("reason %q", d.Stats().Degraded)
	}
	if !marked(t, spec.Path, 0, 1<<20) {
		t.Fatal("the map misses the rewritten MiB")
	}
}

func TestLowSpaceStopsLoggingBeforeTheGuestFails(t *testing.T) {
	spec := modelDisk(t)
	tr, err := Start([]DiskSpec{spec}, Options{MinFree: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	write(t, tr.Disks()[0], 4096, 4096, 0x05)
	if why := tr.Disks()[0].Stats().Degraded; !strings.Contains(why, "bytes free") {
		t.Fatalf("reason %q", why)
	}
	if logs, _ := Logs(spec.Path); len(logs) != 0 {
		t.Fatalf("logging went on: %v", logs)
	}
}

func TestOneDiskOneTracker(t *testing.T) {
	spec := modelDisk(t)
	tr, err := Start([]DiskSpec{spec}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	link := filepath.Join(t.TempDir(), "link.vhd")
	if err := os.Symlink(spec.Path, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(filepath.Dir(spec.Path), "hard.vhd")
	if err := os.Link(spec.Path, hard); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{spec.Path, link, hard} {
		s := spec
		s.Path = p
		if _, err := Start([]DiskSpec{s}, Options{}); !errors.Is(err, ErrInUse) {
			t.Fatalf("second tracker on %s: %v, want ErrInUse", p, err)
		}
	}
}

func TestResizedDiskIsRefused(t *testing.T) {
	spec := modelDisk(t)
	spec.Size = modelSize - 1<<20
	if _, err := Start([]DiskSpec{spec}, Options{}); !errors.Is(err, ErrResized) {
		t.Fatalf("got %v, want ErrResized", err)
	}
	if logs, _ := Logs(spec.Path); len(logs) != 0 {
		t.Fatal("a refused disk got a log")
	}
}

func TestDamagedOpenLogServesTheDiskDegraded(t *testing.T) {
	spec := modelDisk(t)
	tr, err := Start([]DiskSpec{spec}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, tr.Disks()[0], 0, 4096, 0x06)
	snap := crash(t, tr)
	snap.restore(t, spec.Path)
	log := LogPath(spec.Path, 1)
	f, err := os.OpenFile(log, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 44) // EOLLocation: the header's checksum fails
	f.Close()
	tr, err = Start([]DiskSpec{spec}, Options{})
	if err != nil {
		t.Fatalf("the VM could not start: %v", err)
	}
	defer tr.Close()
	if why := tr.Disks()[0].Stats().Degraded; !strings.Contains(why, "can't be trusted") {
		t.Fatalf("reason %q", why)
	}
	if !marked(t, spec.Path, 0, modelSize) {
		t.Fatal("an untrusted chain must mark the whole disk")
	}
	write(t, tr.Disks()[0], 0, 4096, 0x07)
}
