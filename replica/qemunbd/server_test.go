package qemunbd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/vhd/qemutest"
)

const helperEnv = "QEMUNBD_TEST_HELPER" // image path: play a dying asr

// TestMain lets TestDiesWithASR re-execute this binary as a fake asr that
// starts a server and waits to be killed.
func TestMain(m *testing.M) {
	if img := os.Getenv(helperEnv); img != "" {
		os.Exit(fakeASR(img, os.Getenv(helperEnv+"_DIR")))
	}
	os.Exit(m.Run())
}

func fakeASR(img, dir string) int {
	s, err := Start(context.Background(), img, Options{Format: "qcow2", Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(s.PID())
	select {} // until killed
}

// image makes a 64 MiB image of format whose first MiB is 0x33.
func image(t *testing.T, format, options string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk."+format)
	qemutest.CreateFormat(t, p, format, options, 64<<20)
	qemutest.Write(t, p, format, 0, 1<<20, 0x33)
	return p
}

func start(t *testing.T, ctx context.Context, path string, opt Options) *Server {
	t.Helper()
	s, err := Start(ctx, path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func nbdURL(s *Server) string { return "nbd+unix:///" + s.Export() + "?socket=" + s.Socket() }

// qemuIO runs qemu-io with -c commands on an image and returns its output
// and whether every command succeeded (a pattern mismatch included).
func qemuIO(t *testing.T, format, target string, cmds ...string) (string, bool) {
	t.Helper()
	return qemuIOArgs(t, []string{"-f", format}, target, cmds...)
}

// qemuIOArgs is qemuIO with qemu-io's options in args.
func qemuIOArgs(t *testing.T, args []string, target string, cmds ...string) (string, bool) {
	t.Helper()
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command(qemutest.Need(t, "qemu-io"), append(args, target)...).CombinedOutput()
	ok := err == nil && !strings.Contains(string(out), "failed") && !strings.Contains(string(out), "error")
	return string(out), ok
}

// gone says whether process pid has ended (absent, or a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	for end := time.Now().Add(within); !gone(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("process %d still runs %s later", pid, within)
		}
	}
}

func waitDone(t *testing.T, s *Server, within time.Duration) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(within):
		t.Fatalf("Done not closed within %s", within)
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestServeQcow2: the image's bytes come out of the socket, writes go into
// the image, and Stop leaves no process, socket or directory.
func TestServeQcow2(t *testing.T) {
	img := image(t, "qcow2", "")
	s := start(t, context.Background(), img, Options{Format: "qcow2"})
	if st, err := os.Stat(filepath.Dir(s.Socket())); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v, mode %v; want 0700", err, st.Mode())
	}
	if s.Export() != "disk" {
		t.Fatalf("Export() = %q, want disk", s.Export())
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if nbdinfo, err := exec.LookPath("nbdinfo"); err == nil {
		out, err := exec.Command(nbdinfo, "--size", nbdURL(s)).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(64<<20) {
			t.Fatalf("nbdinfo --size: %v %q, want %d", err, out, 64<<20)
		}
	} else {
		t.Log("nbdinfo not installed (libnbd-bin): size not checked with it")
	}
	if out, ok := qemuIO(t, "raw", nbdURL(s), "read -P 0x33 0 1M", "read -P 0 1M 1M"); !ok {
		t.Fatalf("reading through NBD:\n%s", out)
	}
	if out, ok := qemuIO(t, "raw", nbdURL(s), "read -P 0x44 0 1M"); ok {
		t.Fatalf("a wrong pattern read back fine, so the reads prove nothing:\n%s", out)
	}
	if out, ok := qemuIO(t, "raw", nbdURL(s), "write -P 0x44 2M 64k"); !ok {
		t.Fatalf("writing through NBD:\n%s", out)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check after clients came and went: %v", err)
	}
	pid, dir := s.PID(), filepath.Dir(s.Socket())
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !gone(pid) || exists(s.Socket()) || exists(dir) {
		t.Fatalf("after Stop: process gone %v, socket left %v, directory left %v", gone(pid), exists(s.Socket()), exists(dir))
	}
	if s.Err() != nil || s.Stop() != nil {
		t.Fatalf("after a clean Stop: Err %v, Stop again %v; want nil", s.Err(), s.Stop())
	}
	if err := s.Check(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Check after Stop = %v, want ErrNotRunning", err)
	}
	if out, ok := qemuIO(t, "qcow2", img, "read -P 0x44 2M 64k", "read -P 0x33 0 1M"); !ok {
		t.Fatalf("the image after Stop lacks the write made through NBD:\n%s", out)
	}
}

// TestServeProbed: Probe picks the format and qemu-nbd serves it, a VMDK
// descriptor with its extents beside it included.
func TestServeProbed(t *testing.T) {
	for _, c := range []struct{ format, options string }{
		{"vhdx", ""},
		{"vmdk", "subformat=twoGbMaxExtentSparse"},
	} {
		t.Run(c.format, func(t *testing.T) {
			img := image(t, c.format, c.options)
			f, err := Probe(img)
			if err != nil || f != c.format {
				t.Fatalf("Probe = %q, %v; want %s", f, err, c.format)
			}
			s := start(t, context.Background(), img, Options{Format: f, ReadOnly: true})
			if out, ok := qemuIOArgs(t, []string{"-r", "-f", "raw"}, nbdURL(s), "read -P 0x33 0 1M", "read -P 0 1M 1M"); !ok {
				t.Fatalf("reading through NBD:\n%s", out)
			}
			if out, ok := qemuIO(t, "raw", nbdURL(s), "write -P 0x44 0 4k"); ok {
				t.Fatalf("a write to a read-only server succeeded:\n%s", out)
			}
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestKilledChild: a child killed behind asr's back closes Done, and Err
// and Check say so; the Checks before it left nothing in its stderr.
func TestKilledChild(t *testing.T) {
	s := start(t, context.Background(), image(t, "qcow2", ""), Options{Format: "qcow2"})
	for range 3 {
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 2*time.Second)
	err := s.Err()
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Err() = %v; want ErrExited saying it was killed", err)
	}
	// Checks leave politely: qemu logged nothing to crowd out a reason.
	if strings.Contains(err.Error(), "negotiation failed") {
		t.Fatalf("Check's connections made qemu-nbd complain: %v", err)
	}
	if err := s.Check(); !errors.Is(err, ErrNotRunning) || !errors.Is(err, ErrExited) {
		t.Fatalf("Check() = %v; want ErrNotRunning with the exit", err)
	}
	if exists(s.Socket()) || exists(filepath.Dir(s.Socket())) {
		t.Fatal("the socket or its directory outlived the child")
	}
	if err := s.Stop(); !errors.Is(err, ErrExited) {
		t.Fatalf("Stop() after the crash = %v; want the crash", err)
	}
}

// TestCancel: ending Start's context stops the child.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := start(t, ctx, image(t, "qcow2", ""), Options{Format: "qcow2"})
	cancel()
	waitDone(t, s, 5*time.Second)
	waitGone(t, s.PID(), time.Second)
	if err := s.Err(); !errors.Is(err, context.Canceled) || errors.Is(err, ErrKilled) {
		t.Fatalf("Err() = %v; want context.Canceled, not killed", err)
	}
	if exists(s.Socket()) {
		t.Fatal("socket left behind")
	}
}

// TestStopKillsHungChild: a child that doesn't answer SIGTERM (stopped
// with SIGSTOP) fails Check and is killed by Stop after the grace.
func TestStopKillsHungChild(t *testing.T) {
	defer func(g, c time.Duration) { stopGrace, checkTimeout = g, c }(stopGrace, checkTimeout)
	stopGrace, checkTimeout = 300*time.Millisecond, 300*time.Millisecond
	s := start(t, context.Background(), image(t, "qcow2", ""), Options{Format: "qcow2"})
	if err := syscall.Kill(s.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); !errors.Is(err, ErrUnresponsive) {
		t.Fatalf("Check() on a stopped child = %v, want ErrUnresponsive", err)
	}
	if err := s.Stop(); !errors.Is(err, ErrKilled) {
		t.Fatalf("Stop() = %v, want ErrKilled", err)
	}
	waitGone(t, s.PID(), time.Second)
}

// TestWriteLockHeld: qemu's lock message reaches the caller, and the
// refused start leaves no directory.
func TestWriteLockHeld(t *testing.T) {
	img := image(t, "qcow2", "")
	a := start(t, context.Background(), img, Options{Format: "qcow2"})
	dir := filepath.Join(t.TempDir(), "second")
	_, err := Start(context.Background(), img, Options{Format: "qcow2", Dir: dir})
	if !errors.Is(err, ErrExited) || !strings.Contains(fmt.Sprint(err), `Failed to get "write" lock`) {
		t.Fatalf("second Start = %v; want ErrExited with qemu's lock message", err)
	}
	if exists(dir) {
		t.Fatal("the refused start left its socket directory")
	}
	if err := a.Check(); err != nil {
		t.Fatalf("the first server after the refusal: %v", err)
	}
}

// TestNotAnImage: qemu's own complaint is in the error.
func TestNotAnImage(t *testing.T) {
	qemutest.Need(t, "qemu-nbd")
	p := filepath.Join(t.TempDir(), "text.qcow2")
	if err := os.WriteFile(p, []byte(strings.Repeat("not a disk\n", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), p, Options{Format: "qcow2"})
	if !errors.Is(err, ErrExited) || !strings.Contains(fmt.Sprint(err), "not in qcow2 format") {
		t.Fatalf("Start = %v; want ErrExited with qemu's message", err)
	}
}

// TestStartRefuses: what Start checks before running anything.
func TestStartRefuses(t *testing.T) {
	qemutest.Need(t, "qemu-nbd")
	tmp := t.TempDir()
	img := filepath.Join(tmp, "x.qcow2")
	os.WriteFile(img, nil, 0o644)
	fifo := filepath.Join(tmp, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(tmp, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755)
	for _, c := range []struct {
		name, path string
		opt        Options
		want       string
	}{
		{"no format", img, Options{}, "no image format"},
		{"missing", filepath.Join(tmp, "none"), Options{Format: "qcow2"}, "no such file"},
		{"fifo", fifo, Options{Format: "qcow2"}, "a FIFO"},
		{"open dir", img, Options{Format: "qcow2", Dir: open}, "chmod 700"},
		{"long path", img, Options{Format: "qcow2", Dir: filepath.Join(tmp, strings.Repeat("d", 120))}, "shorter directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Start(context.Background(), c.path, c.opt)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start = %v; want an error saying %q", err, c.want)
			}
		})
	}
	if !exists(open) || exists(filepath.Join(tmp, strings.Repeat("d", 120))) {
		t.Fatal("a refused start removed the caller's directory or left its own")
	}
	t.Run("not installed", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := Start(context.Background(), img, Options{Format: "qcow2"})
		if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "qemu-utils") {
			t.Fatalf("Start = %v; want ErrNotInstalled naming qemu-utils", err)
		}
	})
}

// TestOneServerPerDir: a second server is refused a directory whose
// socket a live server answers on; the first keeps its socket.
func TestOneServerPerDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sock")
	a := start(t, context.Background(), image(t, "qcow2", ""), Options{Format: "qcow2", Dir: dir})
	_, err := Start(context.Background(), image(t, "qcow2", ""), Options{Format: "qcow2", Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "already listens") {
		t.Fatalf("second Start in the same Dir = %v; want a refusal", err)
	}
	if err := a.Check(); err != nil {
		t.Fatalf("the first server after the refusal: %v", err)
	}
	a.Stop()
	if exists(dir) {
		t.Fatal("Stop left the directory Start made")
	}
}

// TestDiesWithASR: when asr is killed with SIGKILL, its qemu-nbd gets
// SIGTERM (Pdeathsig), exits cleanly and frees the image.
func TestDiesWithASR(t *testing.T) {
	img := image(t, "qcow2", "")
	dir := filepath.Join(t.TempDir(), "sock")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+img, helperEnv+"_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("fake asr printed %q (%v, %v)", line, err, perr)
	}
	defer func() {
		if !gone(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitGone(t, pid, 5*time.Second)
	if exists(filepath.Join(dir, socketName)) {
		t.Error("qemu-nbd left its socket: it did not exit cleanly")
	}
	// Its lock is gone: the image opens for writing again.
	s := start(t, context.Background(), img, Options{Format: "qcow2"})
	if out, ok := qemuIO(t, "raw", nbdURL(s), "read -P 0x33 0 1M"); !ok {
		t.Fatalf("reading after the restart:\n%s", out)
	}
}
