package tracker

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// imageLockTool finds a qemu tool. Without it the test is skipped on a
// developer's machine, but fails under CI, where the tools must be present.
func imageLockTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed", name)
		}
		t.Fatalf("%s not installed (required under CI): %v", name, err)
	}
	return p
}

// imageLockRaw makes a 1 MiB raw image of bytes qemu-io's default write
// pattern (0xcd) can't leave unchanged.
func imageLockRaw(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0x5a}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// imageLockVHD makes a 1 MiB fixed VHD with qemu-img itself.
func imageLockVHD(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.vhd")
	imageLockRun(t, true, imageLockTool(t, "qemu-img"), "create", "-q", "-f", "vpc", "-o", "subformat=fixed", p, "1M")
	return p
}

// imageLockRun runs a qemu tool, fails the test unless it succeeds or
// fails as wantOK says, and returns its combined output.
func imageLockRun(t *testing.T, wantOK bool, tool string, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool, args...).CombinedOutput()
	if (err == nil) != wantOK {
		t.Fatalf("%s %s: err=%v, want success=%v; output:\n%s", filepath.Base(tool), strings.Join(args, " "), err, wantOK, out)
	}
	return string(out)
}

func imageLockHash(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func mustLockImage(t *testing.T, p string) *ImageLock {
	t.Helper()
	l, err := LockImage(p)
	if err != nil {
		t.Fatalf("LockImage(%s): %v", p, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// The bytes locked are exactly qemu's for "read-write, sharing neither
// write nor resize", whatever qemu version is installed.
func TestImageLockBytes(t *testing.T) {
	p := imageLockRaw(t)
	mustLockImage(t, p)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[int64]bool{100: true, 101: true, 103: true, 201: true, 203: true}
	for off := int64(0); off < 300; off++ {
		lk := unix.Flock_t{Type: unix.F_WRLCK, Start: off, Len: 1}
		if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
			t.Fatal(err)
		}
		if got := lk.Type != unix.F_UNLCK; got != want[off] {
			t.Errorf("byte %d locked=%v, want %v", off, got, want[off])
		}
		if lk.Type != unix.F_UNLCK && lk.Type != unix.F_RDLCK {
			t.Errorf("byte %d lock type %d, want a read lock", off, lk.Type)
		}
	}
}

func TestImageLockRefusesQemu(t *testing.T) {
	qemuIO, qemuImg := imageLockTool(t, "qemu-io"), imageLockTool(t, "qemu-img")
	for _, c := range []struct {
		format string
		make   func(*testing.T) string
	}{{"raw", imageLockRaw}, {"vpc", imageLockVHD}} {
		t.Run(c.format, func(t *testing.T) {
			p := c.make(t)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			before := imageLockHash(t, p)
			mustLockImage(t, p)

			out := imageLockRun(t, false, qemuIO, "-f", c.format, "-c", "write 0 512", p)
			if !strings.Contains(out, `Failed to get "write" lock`) {
				t.Errorf("qemu-io write: output doesn't name the write lock:\n%s", out)
			}
			out = imageLockRun(t, true, qemuIO, "-r", "-U", "-f", c.format, "-c", "read 0 512", p)
			if !strings.Contains(out, "read 512/512 bytes") {
				t.Errorf("qemu-io -r -U read: unexpected output:\n%s", out)
			}
			// Plain qemu-img info is allowed: it opens read-only and, as
			// qemu can't tell a fixed VHD (signature only in the footer)
			// from raw, it probes both as raw, and a raw reader takes
			// consistent read only and shares everything. With -f vpc the
			// format driver reads metadata, so it unshares write, which we
			// hold: refused.
			out = imageLockRun(t, true, qemuImg, "info", p)
			if !strings.Contains(out, "file format: raw") {
				t.Errorf("qemu-img info: unexpected output:\n%s", out)
			}
			if c.format == "vpc" {
				out = imageLockRun(t, false, qemuImg, "info", "-f", "vpc", p)
				if !strings.Contains(out, `Failed to get shared "write" lock`) {
					t.Errorf("qemu-img info -f vpc: output doesn't name the shared write lock:\n%s", out)
				}
				imageLockRun(t, true, qemuImg, "info", "-U", "-f", "vpc", p)
			}
			out = imageLockRun(t, false, qemuImg, "resize", "-f", c.format, p, "2M")
			if !strings.Contains(out, `Failed to get "write" lock`) {
				t.Errorf("qemu-img resize: output doesn't name the write lock:\n%s", out)
			}

			if imageLockHash(t, p) != before {
				t.Error("image changed while locked")
			}
			if st2, err := os.Stat(p); err != nil || st2.Size() != st.Size() {
				t.Errorf("image size changed while locked: %v, %v", st2.Size(), err)
			}
		})
	}
}

func TestImageLockTwice(t *testing.T) {
	p := imageLockRaw(t)
	l := mustLockImage(t, p)
	if l2, err := LockImage(p); !errors.Is(err, ErrInUse) {
		t.Fatalf("second LockImage: %v, %v; want ErrInUse", l2, err)
	} else if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "asr track") {
		t.Errorf("error doesn't name the file and the remedy: %v", err)
	}
	// Another name for the same file is the same file.
	link := filepath.Join(t.TempDir(), "link.raw")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LockImage(link); !errors.Is(err, ErrInUse) {
		t.Fatalf("LockImage via symlink: %v; want ErrInUse", err)
	}
	// A refused LockImage leaves no locks behind, so Close frees the file.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustLockImage(t, p)
}

// imageLockStart starts a qemu process that holds p open, waits until it
// has taken its locks, and returns a func that ends it (also run when the
// test ends).
func imageLockStart(t *testing.T, p string, ready func() bool, tool string, args ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	stdin, err := cmd.StdinPipe() // kept open: qemu-io reads commands until EOF
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stdin.Close()
			cmd.Process.Kill() // by PID: ours, and only ours
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); !ready(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s didn't take its locks on %s; output:\n%s", filepath.Base(tool), p, out.String())
		}
	}
	return stop
}

// imageLockHeld says whether anyone locks byte off of p.
func imageLockHeld(p string, off int64) func() bool {
	return func() bool {
		f, err := os.Open(p)
		if err != nil {
			return false
		}
		defer f.Close()
		lk := unix.Flock_t{Type: unix.F_WRLCK, Start: off, Len: 1}
		return unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk) == nil && lk.Type != unix.F_UNLCK
	}
}

func TestImageLockRefusedWhileQemuHasIt(t *testing.T) {
	for _, c := range []struct {
		name, tool string
		vhd        bool
		args       []string // before the socket (qemu-nbd) and the file
		ready      int64    // a byte the process locks once it has the image
		want       string   // in LockImage's error; "" means LockImage succeeds
	}{
		{"qemu-nbd", "qemu-nbd", false, []string{"-f", "raw"}, 101, `holds the "write" permission`},
		{"qemu-io", "qemu-io", false, []string{"-f", "raw"}, 101, `holds the "write" permission`},
		// A reader through a format driver won't let anyone write under its metadata.
		{"qemu-io-readonly-vpc", "qemu-io", true, []string{"-r", "-f", "vpc"}, 201, `won't share the "write" permission`},
		// qemu's raw reader takes consistent read only and shares everything:
		// pinned here because it is qemu's choice, not a hole in ours.
		{"qemu-io-readonly-raw", "qemu-io", false, []string{"-r", "-f", "raw"}, 100, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			tool := imageLockTool(t, c.tool)
			var p string
			if c.vhd {
				p = imageLockVHD(t)
			} else {
				p = imageLockRaw(t)
			}
			args := c.args
			if c.tool == "qemu-nbd" {
				args = append(args, "--socket", filepath.Join(t.TempDir(), "nbd.sock"))
			}
			stop := imageLockStart(t, p, imageLockHeld(p, c.ready), tool, append(args, p)...)
			l, err := LockImage(p)
			if c.want == "" {
				if err != nil {
					t.Fatalf("LockImage while %s reads the image: %v", c.name, err)
				}
				l.Close()
				return
			}
			if !errors.Is(err, ErrInUse) {
				if l != nil {
					l.Close()
				}
				t.Fatalf("LockImage while %s has the image: %v; want ErrInUse", c.name, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q doesn't say %q", err, c.want)
			}
			// qemu's locks go with its process.
			stop()
			mustLockImage(t, p)
		})
	}
}

func TestImageLockCloseIdempotent(t *testing.T) {
	qemuIO := imageLockTool(t, "qemu-io")
	p := imageLockRaw(t)
	before := imageLockHash(t, p)
	l, err := LockImage(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := l.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	imageLockRun(t, true, qemuIO, "-f", "raw", "-c", "write 0 512", p)
	if imageLockHash(t, p) == before {
		t.Error("qemu-io's write after Close didn't reach the image")
	}
}
