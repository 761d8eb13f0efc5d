package tracker

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/asr-project/asr/replica/vhd"
)

// smallFS mounts a tmpfs of size bytes for the test: a real file system
// that fills up. It needs root; CI runs as root.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount a tmpfs: %v", err)
		}
		t.Skipf("mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return dir
}

// A full datastore: the log hits ENOSPC (no reserve configured to see it
// coming). Every guest write still succeeds, the log is dropped to free its
// space, and the dirty map records what changed.
func TestFullFileSystemKeepsTheGuestRunning(t *testing.T) {
	dir := smallFS(t, "24m")
	path := filepath.Join(dir, "os.vhd")
	d, err := vhd.CreateFixed(path, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	// Allocate the disk, as a fixed VHD on a datastore is: its own writes
	// never need new space.
	if _, err := d.WriteAt(make([]byte, 16<<20), 0); err != nil {
		t.Fatal(err)
	}
	d.Close()
	spec := DiskSpec{Name: "os", Path: path, Size: 16 << 20}
	tr, err := Start([]DiskSpec{spec}, Options{MinFree: 1, MaxLogBytes: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	dk := tr.Disks()[0]
	write(t, dk, 0, 1<<20, 0xff)
	// Something else takes the rest of the file system.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = filler.Write(make([]byte, 1<<20))
	}
	filler.Close()
	var last [16]byte
	for i := range 40 {
		write(t, dk, int64(i%16)<<20, 1<<20, byte(i+1))
		last[i%16] = byte(i + 1)
	}
	if err := dk.Flush(); err != nil {
		t.Fatalf("guest flush on a full datastore: %v", err)
	}
	if why := dk.Stats().Degraded; !strings.Contains(why, "no space left") {
		t.Fatalf("reason %q", why)
	}
	if !marked(t, path, 0, 16<<20) {
		t.Fatal("the dirty map misses writes")
	}
	img := diskImage(t, path)
	for i := range 16 {
		if want := last[i]; img[i<<20] != want {
			t.Fatalf("MiB %d holds %#x, want %#x: a guest write was lost", i, img[i<<20], want)
		}
	}
}

// With the default reserve the tracker stops before the file system is
// full, so not even the log sees an error.
func TestReserveStopsLoggingBeforeTheFileSystemIsFull(t *testing.T) {
	dir := smallFS(t, "48m")
	path := filepath.Join(dir, "os.vhd")
	d, err := vhd.CreateFixed(path, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	spec := DiskSpec{Name: "os", Path: path, Size: 8 << 20}
	tr, err := Start([]DiskSpec{spec}, Options{MinFree: 24 << 20, MaxLogBytes: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i := range 32 {
		write(t, tr.Disks()[0], int64(i%8)<<20, 1<<20, byte(i))
	}
	why := tr.Disks()[0].Stats().Degraded
	if !strings.Contains(why, "under the 25165824-byte reserve") {
		t.Fatalf("reason %q", why)
	}
	var st syscall.Statfs_t
	syscall.Statfs(dir, &st)
	if free := int64(st.Bavail) * st.Bsize; free < 16<<20 {
		t.Fatalf("only %d bytes left free", free)
	}
}
