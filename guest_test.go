//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRealGuest boots a real Linux guest (a Debian cloud kernel and a
// busybox initramfs, built by .ci/guest/build.sh) under qemu on a disk that
// asr track serves over NBD. The guest makes an ext2 file system and writes
// files of known checksums; asr replicates through the running tracker and
// again after SIGTERM; the exported recovery point must equal the disk byte
// for byte (qemu-img compare), and a second guest booted on the exported
// VHD must find every file with the checksums the first one wrote.
//
// It skips without qemu-system-x86_64, unless CI is set. The guest is
// cached in $ASR_GUEST_CACHE, else the user cache folder's asr-guest.
func TestRealGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two qemu guests; not with -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	g := &guestRun{t: t, ctx: ctx}
	t.Cleanup(g.dump)
	kit := newGuestKit(g, dir)
	qemuImg, asr := kit.qemuImg, kit.asr
	state := filepath.Join(dir, "site.db")
	asrRun := func(args ...string) string {
		return g.run("asr "+args[0], asr, append([]string{"--state", state}, args...)...)
	}
	disk := filepath.Join(dir, "vm", "disk.raw")
	sock := filepath.Join(dir, "sock")
	for _, d := range []string{filepath.Dir(disk), sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	asrRun("init", "--site", "primary")
	g.run("qemu-img create", qemuImg, "create", "-f", "raw", disk, "64M")
	asrRun("enable-protection", "vm", "--disk", disk, "--target", "file://"+filepath.Join(dir, "target"))

	tracker := g.start("asr track", asr, "--state", state, "track", "vm", "--socket-dir", sock)
	drive := tracker.waitDrive(t, 30*time.Second)

	written := g.boot(kit, "write", drive, filepath.Join(dir, "write.console"))

	asrRun("replicate", "vm")
	if err := syscall.Kill(tracker.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to asr track: %v", err)
	}
	select {
	case <-tracker.done:
		if tracker.err != nil {
			t.Fatalf("asr track after SIGTERM: %v, want exit 0", tracker.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("asr track did not exit within 30s of SIGTERM")
	}
	asrRun("replicate", "vm")
	export := filepath.Join(dir, "export")
	asrRun("points", "export", "vm", "--dir", export)
	vhd := filepath.Join(export, "disk.vhd")
	if out := g.run("qemu-img compare", qemuImg, "compare", "-f", "raw", "-F", "vpc", disk, vhd); !strings.Contains(out, "Images are identical") {
		t.Fatalf("qemu-img compare of the disk and the exported point:\n%s", out)
	}

	checked := g.boot(kit, "check", "file="+vhd+",format=vpc,if=virtio,readonly=on", filepath.Join(dir, "check.console"))
	if !slices.Equal(written, checked) {
		t.Fatalf("checksums in the exported point differ from those the guest wrote:\nwrote %q\nfound %q", written, checked)
	}
}

// guestKit is what a guest test runs: qemu, qemu-img, the guest's kernel
// and initramfs, and asr built from this checkout.
type guestKit struct {
	qemu, qemuImg  string
	kernel, initrd string
	asr            string
}

// newGuestKit finds qemu (skipping the test without it, unless CI is set),
// builds the guest with .ci/guest/build.sh and asr into DIR.
func newGuestKit(g *guestRun, dir string) guestKit {
	t := g.t
	k := guestKit{
		qemu:    guestTool(t, "qemu-system-x86_64", "qemu-system-x86"),
		qemuImg: guestTool(t, "qemu-img", "qemu-utils"),
		asr:     filepath.Join(dir, "asr"),
	}
	start := time.Now()
	out := g.run("build.sh", "bash", ".ci/guest/build.sh", guestCache(t))
	k.kernel, k.initrd = guestKV(out, "KERNEL"), guestKV(out, "INITRD")
	if k.kernel == "" || k.initrd == "" {
		t.Fatalf(".ci/guest/build.sh printed no KERNEL= and INITRD= lines:\n%s", out)
	}
	t.Logf("guest kernel and initramfs ready in %v", time.Since(start).Round(time.Millisecond))
	g.run("go build", "go", "build", "-o", k.asr, ".")
	return k
}

// guestTool returns the path of a program the test needs; without it the
// test skips, or fails when CI is set.
func guestTool(t *testing.T, name, pkg string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (package %s); run the tests with bash .ci/test", name, pkg)
		}
		t.Skipf("no %s: apt-get install --no-install-recommends %s", name, pkg)
	}
	return p
}

// guestCache is where build.sh keeps the guest, outside the repository.
func guestCache(t *testing.T) string {
	if d := os.Getenv("ASR_GUEST_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "asr-guest")
	}
	return t.TempDir()
}

// guestKV finds the value of a KEY=value line.
func guestKV(out, key string) string {
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			return v
		}
	}
	return ""
}

// guestRun holds the children of one TestRealGuest and what they printed.
type guestRun struct {
	t     *testing.T
	ctx   context.Context
	procs []*guestProc
	files []string // consoles
}

type guestProc struct {
	name string
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	err  error
}

// command makes a child under the test's context in its own process group:
// cancelled, the whole group gets SIGKILL, and Wait gives up on its output
// 5 s later.
func (g *guestRun) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 5 * time.Second
	return c
}

// start starts a child in the background; the test's cleanup kills its
// process group (by its PID) if it is still running.
func (g *guestRun) start(label, name string, args ...string) *guestProc {
	return g.startCtx(g.ctx, label, name, args...)
}

func (g *guestRun) startCtx(ctx context.Context, label, name string, args ...string) *guestProc {
	p := &guestProc{name: label, cmd: g.command(ctx, name, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		g.t.Fatalf("%s: %v", label, err)
	}
	g.procs = append(g.procs, p)
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	g.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// run runs a child to completion and returns its output; it must exit 0.
func (g *guestRun) run(label, name string, args ...string) string {
	p := g.start(label, name, args...)
	<-p.done
	if p.err != nil {
		g.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), p.err, p.out.String())
	}
	return p.out.String()
}

// waitDrive waits for asr track to print the qemu -drive argument of its
// one disk and returns the argument.
func (p *guestProc) waitDrive(t *testing.T, timeout time.Duration) string {
	deadline := time.After(timeout)
	for {
		out := p.out.String()
		if strings.Contains(out, "tracking 1 disk(s)") {
			for line := range strings.Lines(out) {
				if _, arg, ok := strings.Cut(line, "-drive "); ok {
					return strings.TrimSpace(arg)
				}
			}
			t.Fatalf("asr track printed no -drive argument:\n%s", out)
		}
		select {
		case <-p.done:
			t.Fatalf("asr track exited before serving its disk: %v\n%s", p.err, out)
		case <-deadline:
			t.Fatalf("asr track served no disk within %v:\n%s", timeout, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// boot runs the guest with asr.mode=MODE on one virtio disk, its console in
// the file CONSOLE, until it powers off, and requires its
// ASR-GUEST-MODE-OK marker. It returns the guest's ASR-SUM lines
// (sha256sum output, one per file).
func (g *guestRun) boot(k guestKit, mode, drive, console string) []string {
	t := g.t
	ctx, cancel := context.WithTimeout(g.ctx, 3*time.Minute)
	defer cancel()
	start := time.Now()
	p, args := g.launch(ctx, k, mode, drive, console)
	<-p.done
	took := time.Since(start).Round(time.Millisecond)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("guest (asr.mode=%s) still running after %v; killed", mode, took)
	}
	if p.err != nil {
		t.Fatalf("qemu (asr.mode=%s): %v\n%s", mode, p.err, p.out.String())
	}
	t.Logf("guest asr.mode=%s booted, ran and powered off in %v: qemu %s", mode, took, guestQuote(args))
	out, err := os.ReadFile(console)
	if err != nil {
		t.Fatal(err)
	}
	sums, ok := guestSums(out, mode)
	if !ok {
		t.Fatalf("guest (asr.mode=%s) did not print ASR-GUEST-%s-OK", mode, strings.ToUpper(mode))
	}
	if len(sums) != 3 {
		t.Fatalf("guest (asr.mode=%s) printed %d ASR-SUM lines, want 3", mode, len(sums))
	}
	return sums
}

// launch starts the guest under ctx with asr.mode=MODE and the kernel
// parameters PARAMS on one virtio disk, its console in the file CONSOLE.
// It returns the qemu process and its arguments.
func (g *guestRun) launch(ctx context.Context, k guestKit, mode, drive, console string, params ...string) (*guestProc, []string) {
	g.files = append(g.files, console)
	args := []string{
		"-machine", "q35,accel=tcg", "-m", "256", "-nodefaults", "-display", "none",
		"-monitor", "none", "-no-reboot", "-serial", "file:" + console,
		"-kernel", k.kernel, "-initrd", k.initrd,
		"-append", strings.Join(append([]string{"console=ttyS0 panic=-1 quiet asr.mode=" + mode}, params...), " "),
		"-drive", drive,
	}
	return g.startCtx(ctx, "qemu "+mode, k.qemu, args...), args
}

// guestSums reads a console: whether it has the ASR-GUEST-MODE-OK marker,
// and its ASR-SUM lines (the guest writes three files).
func guestSums(console []byte, mode string) (sums []string, ok bool) {
	if !bytes.Contains(console, []byte("ASR-GUEST-"+strings.ToUpper(mode)+"-OK")) {
		return nil, false
	}
	sc := bufio.NewScanner(bytes.NewReader(console))
	for sc.Scan() {
		if s, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ASR-SUM "); ok {
			sums = append(sums, s)
		}
	}
	return sums, true
}

// guestQuote joins args as a shell would read them back.
func guestQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if strings.ContainsAny(a, " ?&'\"$*") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// dump prints, when the test failed, the consoles and every child's output.
func (g *guestRun) dump() {
	if !g.t.Failed() {
		return
	}
	for _, f := range g.files {
		b, err := os.ReadFile(f)
		if err != nil {
			b = []byte(err.Error())
		}
		g.t.Logf("console %s:\n%s", filepath.Base(f), b)
	}
	for _, p := range g.procs {
		state := "running"
		select {
		case <-p.done:
			state = fmt.Sprint("exited: ", p.err)
		default:
		}
		g.t.Logf("%s (pid %d, %s):\n%s", p.name, p.cmd.Process.Pid, state, p.out.String())
	}
}

// syncBuffer is a bytes.Buffer that a child writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
