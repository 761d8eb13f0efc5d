//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/target"
)

// TestRoundTripGuest takes a VM with a real guest to the recovery site and
// back, once per target backend, on the built binary:
//
//  1. a 64 MiB dynamic VHD is protected and served by asr track; the
//     guest (asr.mode=write asr.hold=1) writes its files and holds, and
//     asr replicate web ships them;
//  2. asr failover web --planned (the command host driver stops the
//     guest's qemu, as in TestFailoverGuest), the tracker stops, and
//     asr failover commit web;
//  3. the recovered VM writes more (asr.mode=more: two new files, their
//     checksums appended to SHA256SUMS) on the recovery disk: the fixed
//     VHD in the recovery folder, or on Azure the page blob recovery/web/os
//     read into a raw file, booted, and its changed 64 KiB blocks written
//     back through the target. The bytes changed at the recovery site are
//     the 64 KiB blocks that differ before and after, times 64 KiB;
//  4. asr failback web sends at least those bytes and at most 10% more,
//     and leaves the original disk equal to the recovered one (qemu-img
//     compare);
//  5. a guest booted read-only on the original disk (asr.mode=check) finds
//     the old files and the new ones;
//  6. asr failback commit web removes the recovered disk; with asr track
//     web serving the disk again, asr reprotect web sends the changed
//     bytes (at most 10% more), asr replicate web, and an unplanned
//     failover once more yields a recovery disk equal to the source.
//
// Like TestFailoverGuest, it skips with -short and without qemu (unless
// CI is set); the subtest azblob needs Azurite.
func TestRoundTripGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots qemu guests; not with -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // build.sh may download the guest
	defer cancel()
	g := &guestRun{t: t, ctx: ctx}
	t.Cleanup(g.dump)
	kit := newGuestKit(g, t.TempDir())
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		roundTrip(t, kit, dir, "file://"+filepath.Join(dir, "target"))
	})
	t.Run("azblob", func(t *testing.T) {
		requireAzurite(t)
		roundTrip(t, kit, t.TempDir(), azuriteTarget("roundtrip"))
	})
}

// roundTripBlock is the block size in which the test measures the
// recovered VM's changes, the block size of failback and resync.
const roundTripBlock = 64 << 10

// roundTrip is one backend's run of TestRoundTripGuest, in DIR, with the
// target URL TARGET.
func roundTrip(t *testing.T, kit guestKit, dir, targetURL string) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	g := &guestRun{t: t, ctx: ctx}
	t.Cleanup(g.dump)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	azure := !strings.HasPrefix(targetURL, "file:")
	state := filepath.Join(dir, "site.db")
	asr := func(args ...string) string {
		return g.run("asr "+args[0], kit.asr, append([]string{"--state", state}, args...)...)
	}
	status := func(want string) drillVM {
		t.Helper()
		st := drillStatus(t, asr("status", "web", "-o", "json"))
		if st.State != want {
			t.Fatalf("web is %s, want %s", st.State, want)
		}
		return st
	}
	begin, last := time.Now(), time.Now()
	lap := func(what string) {
		t.Helper()
		t.Logf("%s: %v", what, time.Since(last).Round(time.Millisecond))
		last = time.Now()
	}
	defer func() { t.Logf("round trip on %s: %v in all", targetURL, time.Since(begin).Round(time.Millisecond)) }()

	// 1. Protect, track, let the guest write its files, replicate.
	src := filepath.Join(dir, "vm", "os.vhd")
	sock := filepath.Join(dir, "sock")
	for _, d := range []string{filepath.Dir(src), sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	asr("init", "--site", "primary")
	g.run("qemu-img create", kit.qemuImg, "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", src, "64M")
	asr("enable-protection", "web", "--disk", src, "--target", targetURL)
	tracker := g.start("asr track", kit.asr, "--state", state, "track", "web", "--socket-dir", sock)
	drive := tracker.waitDrive(t, 30*time.Second)
	guest, _ := g.launch(ctx, kit, "write", drive, filepath.Join(dir, "write.console"), "asr.hold=1")
	pidFile := filepath.Join(dir, "qemu.pid")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintln(guest.cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	written := waitHolding(t, guest, filepath.Join(dir, "write.console"), 2*time.Minute)
	asr("replicate", "web")
	lap("protected; the guest wrote its files and holds; replicated")

	// 2. Planned failover through the command host driver, commit.
	commandHost(t, dir, pidFile, "{vm} {disks}")
	rec := filepath.Join(dir, "rec")
	if out := asr("failover", "web", "--planned", "--dir", rec); !strings.Contains(out, "web: FailedOver; point ") {
		t.Fatalf("asr failover web --planned printed no %q:\n%s", "web: FailedOver; point ", out)
	}
	select {
	case <-guest.done:
	default:
		t.Fatal("asr failover web --planned returned and the guest's qemu still runs")
	}
	stopTracker(t, tracker)
	asr("failover", "commit", "web")
	status("Committed")
	lap("planned failover, tracker stopped, committed")

	// 3. The recovered VM writes more; measure what it changed.
	recDisk, recFormat := filepath.Join(rec, "web", "os.vhd"), "vpc"
	if azure {
		recDisk, recFormat = filepath.Join(dir, "recovered.raw"), "raw"
		readDisk(ctx, t, targetURL, "recovery/web/os", recDisk)
	}
	before := filepath.Join(dir, "recovered.before")
	copyFile(t, recDisk, before)
	moreConsole := runGuest(g, kit, "more", "file="+recDisk+",format="+recFormat+",if=virtio", filepath.Join(dir, "more.console"))
	if sums := guestSumLines(moreConsole); len(sums) != 2 {
		t.Fatalf("guest (asr.mode=more) printed %d ASR-SUM lines, want 2: %q", len(sums), sums)
	}
	changed := changedBlocks(t, before, recDisk, 64<<20)
	if len(changed) == 0 {
		t.Fatal("the guest (asr.mode=more) changed no block of the recovered disk")
	}
	changedBytes := int64(len(changed)) * roundTripBlock
	if azure {
		writeBlocks(ctx, t, targetURL, "recovery/web/os", recDisk, changed)
	}
	t.Logf("bytes changed at the recovery site: %d (%d blocks of 64 KiB)", changedBytes, len(changed))
	lap("the recovered VM wrote more")

	// 4. Failback: the recovered VM is down already; its shutdown only logs.
	backLog := filepath.Join(dir, "failback-host.log")
	t.Setenv("ASR_HOST_SHUTDOWN", "echo shutdown {vm} {disks} >>"+backLog)
	t.Setenv("ASR_HOST_START", "echo start {vm} {disks} >>"+backLog)
	out := asr("failback", "web", "-o", "json")
	var fb struct {
		VM        string   `json:"vm"`
		State     string   `json:"state"`
		Disks     []string `json:"disks"`
		Compared  int64    `json:"compared_bytes"`
		Sent      int64    `json:"sent_bytes"`
		FinalSent int64    `json:"final_sent_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &fb); err != nil {
		t.Fatalf("asr failback web -o json: %v\n%s", err, out)
	}
	if fb.VM != "web" || fb.State != "FailedBack" || !slices.Equal(fb.Disks, []string{src}) {
		t.Fatalf("asr failback web -o json: vm %q, state %q, disks %q; want web, FailedBack, [%s]\n%s", fb.VM, fb.State, fb.Disks, src, out)
	}
	t.Logf("failback sent %d bytes for %d changed: ratio %.3f (final pass %d, last pass compared %d)",
		fb.Sent, changedBytes, float64(fb.Sent)/float64(changedBytes), fb.FinalSent, fb.Compared)
	if fb.Sent < changedBytes || float64(fb.Sent) > 1.1*float64(changedBytes) {
		t.Errorf("failback sent %d bytes; want from %d (changed at the recovery site) to %d (+10%%)", fb.Sent, changedBytes, changedBytes*11/10)
	}
	status("FailedBack")
	logged, err := os.ReadFile(backLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(logged)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "shutdown web ") || lines[1] != "start web "+src {
		t.Fatalf("the host driver ran, in the failback:\n%s\nwant a shutdown of web, then start web %s", logged, src)
	}
	t.Logf("the host driver ran, in the failback:\n%s", logged)
	back := filepath.Join(rec, "web", "os.vhd")
	if azure {
		back = filepath.Join(dir, "recovered.after")
		readDisk(ctx, t, targetURL, "recovery/web/os", back)
	}
	if out := g.run("qemu-img compare", kit.qemuImg, "compare", "-f", "vpc", "-F", recFormat, src, back); !strings.Contains(out, "Images are identical") {
		t.Fatalf("qemu-img compare of the original disk and the recovered disk after the failback:\n%s", out)
	}
	lap("failed back; the original disk equals the recovered one")

	// 5. At the primary, the VM finds its files, old and new.
	check := runGuest(g, kit, "check", "file="+src+",format=vpc,if=virtio,readonly=on", filepath.Join(dir, "check.console"))
	if sums := guestSumLines(check); !slices.Equal(sums, written) {
		t.Fatalf("checksums on the original disk differ from those the first guest wrote:\nwrote %q\nfound %q", written, sums)
	}
	for _, f := range []string{"a.bin", "b.bin", "dir/c.bin", "d.bin", "dir/e.bin"} {
		if !bytes.Contains(check, []byte("\n"+f+": OK")) {
			t.Fatalf("sha256sum -c SHA256SUMS on the original disk printed no %q", f+": OK")
		}
	}
	lap("the guest at the primary checked the old and the new files")

	// 6. Failback commit, reprotect, replicate, fail over once more.
	asr("failback", "commit", "web")
	status("FailbackCommitted")
	if azure {
		tg := openTarget(ctx, t, targetURL)
		_, err := tg.DiskSize(ctx, "recovery/web/os")
		tg.Close()
		if !errors.Is(err, target.ErrNotFound) {
			t.Fatalf("after asr failback commit web, recovery/web/os on the target: %v, want not found", err)
		}
	} else if _, err := os.Stat(filepath.Join(rec, "web", "os.vhd")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after asr failback commit web, the recovered disk: %v, want it removed", err)
	}
	tracker = g.start("asr track", kit.asr, "--state", state, "track", "web", "--socket-dir", sock)
	tracker.waitDrive(t, 30*time.Second)
	out = asr("reprotect", "web", "-o", "json")
	var rp []struct {
		VM    string `json:"vm"`
		Point string `json:"point"`
		Bytes int64  `json:"bytes"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &rp); err != nil || len(rp) != 1 || rp[0].VM != "web" || rp[0].Error != "" || rp[0].Point == "" {
		t.Fatalf("asr reprotect web -o json: %v; want one result for web with a point and no error:\n%s", err, out)
	}
	t.Logf("reprotect sent %d bytes for %d changed: ratio %.3f, point %s",
		rp[0].Bytes, changedBytes, float64(rp[0].Bytes)/float64(changedBytes), rp[0].Point)
	if rp[0].Bytes < changedBytes || float64(rp[0].Bytes) > 1.1*float64(changedBytes) {
		t.Errorf("reprotect sent %d bytes; want from %d (changed at the recovery site) to %d (+10%%)", rp[0].Bytes, changedBytes, changedBytes*11/10)
	}
	status("Protected")
	asr("replicate", "web")
	stopTracker(t, tracker)
	lap("failback committed; reprotected and replicated through asr track")

	rec2 := filepath.Join(dir, "rec2")
	if out := asr("failover", "web", "--unplanned", "--dir", rec2); !strings.Contains(out, "web: FailedOver") {
		t.Fatalf("asr failover web --unplanned printed no %q:\n%s", "web: FailedOver", out)
	}
	status("FailedOver")
	again, format := filepath.Join(rec2, "web", "os.vhd"), "vpc"
	if azure {
		again, format = filepath.Join(dir, "again.raw"), "raw"
		readDisk(ctx, t, targetURL, "recovery/web/os", again)
	}
	if out := g.run("qemu-img compare", kit.qemuImg, "compare", "-f", "vpc", "-F", format, src, again); !strings.Contains(out, "Images are identical") {
		t.Fatalf("qemu-img compare of the source disk and the second failover's recovery disk:\n%s", out)
	}
	lap("failed over once more; the recovery disk equals the source")
}

// stopTracker sends SIGTERM to asr track and waits for it to exit 0.
func stopTracker(t *testing.T, tracker *guestProc) {
	t.Helper()
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
}

// runGuest runs the guest with asr.mode=MODE on one virtio disk, its
// console in the file CONSOLE, until it powers off, requires its
// ASR-GUEST-MODE-OK marker and returns the console. Unlike boot it takes
// any number of ASR-SUM lines.
func runGuest(g *guestRun, k guestKit, mode, drive, console string) []byte {
	t := g.t
	t.Helper()
	ctx, cancel := context.WithTimeout(g.ctx, 3*time.Minute)
	defer cancel()
	start := time.Now()
	p, _ := g.launch(ctx, k, mode, drive, console)
	<-p.done
	took := time.Since(start).Round(time.Millisecond)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("guest (asr.mode=%s) still running after %v; killed", mode, took)
	}
	if p.err != nil {
		t.Fatalf("qemu (asr.mode=%s): %v\n%s", mode, p.err, p.out.String())
	}
	out, err := os.ReadFile(console)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("ASR-GUEST-"+strings.ToUpper(mode)+"-OK")) {
		t.Fatalf("guest (asr.mode=%s) did not print ASR-GUEST-%s-OK", mode, strings.ToUpper(mode))
	}
	t.Logf("guest asr.mode=%s booted, ran and powered off in %v", mode, took)
	return out
}

// guestSumLines are a console's ASR-SUM lines.
func guestSumLines(console []byte) []string {
	var sums []string
	for line := range strings.Lines(string(console)) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "ASR-SUM "); ok {
			sums = append(sums, s)
		}
	}
	return sums
}

// copyFile copies the file SRC to DST.
func copyFile(t *testing.T, src, dst string) {
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
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// changedBlocks returns the offsets of the 64 KiB blocks in which the
// first SIZE bytes of the files A and B differ.
func changedBlocks(t *testing.T, a, b string, size int64) []int64 {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	var offs []int64
	pa, pb := make([]byte, roundTripBlock), make([]byte, roundTripBlock)
	for off := int64(0); off < size; off += roundTripBlock {
		if _, err := fa.ReadAt(pa, off); err != nil {
			t.Fatalf("read %s at %d: %v", a, off, err)
		}
		if _, err := fb.ReadAt(pb, off); err != nil {
			t.Fatalf("read %s at %d: %v", b, off, err)
		}
		if !bytes.Equal(pa, pb) {
			offs = append(offs, off)
		}
	}
	return offs
}

// openTarget opens the target at URL; the caller closes it.
func openTarget(ctx context.Context, t *testing.T, url string) target.Target {
	t.Helper()
	tg, err := target.Open(ctx, url, target.Config{Lookup: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// writeBlocks writes the 64 KiB blocks at OFFS of the raw file SRC to the
// same offsets of a disk on the target, as a recovered VM on Azure writes
// its page blob.
func writeBlocks(ctx context.Context, t *testing.T, targetURL, disk, src string, offs []int64) {
	t.Helper()
	tg := openTarget(ctx, t, targetURL)
	defer tg.Close()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, roundTripBlock)
	for _, off := range offs {
		if _, err := f.ReadAt(p, off); err != nil {
			t.Fatalf("read %s at %d: %v", src, off, err)
		}
		if err := tg.WritePages(ctx, disk, off, p); err != nil {
			t.Fatalf("write %s at %d on %s: %v", disk, off, targetURL, err)
		}
	}
}
