//go:build linux

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/target"
)

// TestFailoverGuest runs the planned failover drill with a real guest,
// once per target backend, on the built binary:
//
//  1. a 64 MiB dynamic VHD is protected and served by asr track; the
//     guest (asr.mode=write asr.hold=1) makes a file system on it, writes
//     files of known checksums and stays up;
//  2. the host driver is the command driver: its shutdown (a script
//     here) logs its arguments, sends SIGTERM to the guest's qemu and waits
//     until qemu has exited; its start only logs its arguments, and the
//     test boots the recovered VM itself (step 5);
//  3. asr failover web --planned, with the guest and the tracker running,
//     must shut the guest down, replicate its writes into a final point,
//     make the recovery disks from it and run the start command;
//  4. with the tracker stopped (SIGTERM), the recovery disk (a fixed VHD
//     in the recovery folder, or the page blob recovery/web/os read back
//     through the target) must equal the source disk (qemu-img compare);
//  5. a guest booted read-only on the recovery disk (asr.mode=check) must
//     find every file with the checksums the first one wrote;
//  6. asr failover commit web leaves the VM Committed with only the final
//     point.
//
// The subtest azblob needs Azurite (AZURE_STORAGE_CONNECTION_STRING); it
// skips without, unless CI is set. Like TestRealGuest, it skips without
// qemu unless CI is set.
func TestFailoverGuest(t *testing.T) {
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
		failoverDrill(t, kit, dir, "file://"+filepath.Join(dir, "target"))
	})
	t.Run("azblob", func(t *testing.T) {
		requireAzurite(t)
		failoverDrill(t, kit, t.TempDir(), azuriteTarget("guest"))
	})
}

// failoverDrill is one backend's run of TestFailoverGuest, in DIR, with
// the target URL TARGET.
func failoverDrill(t *testing.T, kit guestKit, dir, targetURL string) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	g := &guestRun{t: t, ctx: ctx}
	t.Cleanup(g.dump)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	state := filepath.Join(dir, "site.db")
	asr := func(args ...string) string {
		return g.run("asr "+args[0], kit.asr, append([]string{"--state", state}, args...)...)
	}
	begin, last := time.Now(), time.Now()
	lap := func(what string) {
		t.Helper()
		t.Logf("%s: %v", what, time.Since(last).Round(time.Millisecond))
		last = time.Now()
	}
	defer func() { t.Logf("drill on %s: %v in all", targetURL, time.Since(begin).Round(time.Millisecond)) }()

	// 1. Protect, track, and let the guest write its files.
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
	first := drillStatus(t, asr("status", "web", "-o", "json"))
	tracker := g.start("asr track", kit.asr, "--state", state, "track", "web", "--socket-dir", sock)
	drive := tracker.waitDrive(t, 30*time.Second)
	console := filepath.Join(dir, "write.console")
	guest, args := g.launch(ctx, kit, "write", drive, console, "asr.hold=1")
	pidFile := filepath.Join(dir, "qemu.pid")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintln(guest.cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	written := waitHolding(t, guest, console, 2*time.Minute)
	lap("protected; guest wrote its files and holds: qemu " + guestQuote(args))

	// 2. The command host driver.
	hostLog := commandHost(t, dir, pidFile, "{vm} {dir} {disks}")

	// 3. The planned failover, guest and tracker running.
	rec := filepath.Join(dir, "rec")
	out := asr("failover", "web", "--planned", "--dir", rec)
	for _, want := range []string{"web: FailedOver; point ", "data-loss window: none", "VM web started by the command host driver"} {
		if !strings.Contains(out, want) {
			t.Fatalf("asr failover web --planned printed no %q:\n%s", want, out)
		}
	}
	select {
	case <-guest.done:
	default:
		t.Fatalf("asr failover web --planned returned and the guest's qemu still runs:\n%s", out)
	}
	final := drillStatus(t, asr("status", "web", "-o", "json"))
	if final.State != "FailedOver" || final.LastPoint == first.LastPoint {
		t.Fatalf("after the planned failover: state %s, last point %s; want FailedOver at a point newer than %s", final.State, final.LastPoint, first.LastPoint)
	}
	// The recovery disk: a file, or a disk on the target that the start
	// command gets as its URL.
	recDisk, startDisk := filepath.Join(rec, "web", "os.vhd"), ""
	if !strings.HasPrefix(targetURL, "file:") {
		recDisk, startDisk = "recovery/web/os", drillDiskURL(ctx, t, targetURL, "recovery/web/os")
		if _, err := os.Stat(filepath.Join(rec, "web", "web.template.json")); err != nil {
			t.Fatalf("no ARM template: %v\n%s", err, out)
		}
	}
	startDisk = cmp.Or(startDisk, recDisk)
	logged, err := os.ReadFile(hostLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(logged)), "\n")
	want := []string{"shutdown web " + src, "start web " + filepath.Join(rec, "web") + " " + startDisk}
	if !slices.Equal(lines, want) {
		t.Fatalf("the host driver ran:\n%s\nwant:\n%s", logged, strings.Join(want, "\n"))
	}
	t.Logf("asr failover web --planned:\n%s", out)
	lap("planned failover to point " + final.LastPoint)

	// 4. The recovery disk equals the source disk, no longer written.
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
	format := "vpc"
	if strings.HasPrefix(targetURL, "file:") {
		fi, err := os.Stat(recDisk)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != 64<<20+512 {
			t.Fatalf("%s has %d bytes, want a fixed VHD of 64 MiB: %d", recDisk, fi.Size(), 64<<20+512)
		}
	} else {
		raw := filepath.Join(dir, "recovery.raw")
		readDisk(ctx, t, targetURL, recDisk, raw)
		recDisk, format = raw, "raw"
	}
	if out := g.run("qemu-img compare", kit.qemuImg, "compare", "-f", "vpc", "-F", format, src, recDisk); !strings.Contains(out, "Images are identical") {
		t.Fatalf("qemu-img compare of the source disk and the recovery disk:\n%s", out)
	}
	lap("recovery disk equals the source")

	// 5. The recovered VM finds the files.
	checked := g.boot(kit, "check", "file="+recDisk+",format="+format+",if=virtio,readonly=on", filepath.Join(dir, "check.console"))
	if !slices.Equal(written, checked) {
		t.Fatalf("checksums on the recovery disk differ from those the guest wrote:\nwrote %q\nfound %q", written, checked)
	}
	lap("recovered guest checked its files")

	// 6. Commit.
	asr("failover", "commit", "web")
	if st := drillStatus(t, asr("status", "web", "-o", "json")); st.State != "Committed" || st.Points != 1 || st.LastPoint != final.LastPoint {
		t.Fatalf("after commit: state %s, %d points, last %s; want Committed with only point %s", st.State, st.Points, st.LastPoint, final.LastPoint)
	}
	lap("committed")
}

// drillVM is what the drill reads of a VM in asr status -o json.
type drillVM struct {
	State     string `json:"state"`
	LastPoint string `json:"last_point"`
	Points    int    `json:"points"`
}

// drillStatus is the one VM in the output of asr status VM -o json.
func drillStatus(t *testing.T, out string) drillVM {
	var vms []drillVM
	if err := json.Unmarshal([]byte(out), &vms); err != nil || len(vms) != 1 {
		t.Fatalf("asr status -o json: %v, %d VMs:\n%s", err, len(vms), out)
	}
	return vms[0]
}

// waitHolding waits for a guest booted with asr.hold=1 to have written its
// files and to hold, and returns its ASR-SUM lines.
func waitHolding(t *testing.T, p *guestProc, console string, timeout time.Duration) []string {
	deadline := time.After(timeout)
	for {
		out, _ := os.ReadFile(console)
		switch {
		case strings.Contains(string(out), "ASR-GUEST-WRITE-FAIL"):
			t.Fatal("the guest (asr.mode=write) failed")
		case strings.Contains(string(out), "ASR-GUEST-HOLDING"):
			sums, ok := guestSums(out, "write")
			if !ok || len(sums) != 3 {
				t.Fatalf("the guest (asr.mode=write) holds with %d ASR-SUM lines and no ASR-GUEST-WRITE-OK", len(sums))
			}
			return sums
		}
		select {
		case <-p.done:
			t.Fatalf("the guest's qemu exited before it held: %v\n%s", p.err, p.out.String())
		case <-deadline:
			t.Fatalf("the guest did not hold within %v", timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// drillDiskURL is the URL of a disk on the target, as asr gives it to the
// host driver.
func drillDiskURL(ctx context.Context, t *testing.T, targetURL, disk string) string {
	tg, err := target.Open(ctx, targetURL, target.Config{Lookup: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	l, ok := tg.(target.Locator)
	if !ok {
		t.Fatalf("target %s gives its disks no URL", targetURL)
	}
	return l.DiskURL(disk)
}

// readDisk copies a disk on the target (its head, not a snapshot) into the
// raw file DST.
func readDisk(ctx context.Context, t *testing.T, targetURL, disk, dst string) {
	tg, err := target.Open(ctx, targetURL, target.Config{Lookup: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	size, err := tg.DiskSize(ctx, disk)
	if err != nil {
		t.Fatalf("recovery disk %s on %s: %v", disk, targetURL, err)
	}
	if size != 64<<20 {
		t.Fatalf("recovery disk %s has %d bytes, want %d", disk, size, 64<<20)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		p := buf[:min(int64(len(buf)), size-off)]
		if err := tg.ReadAt(ctx, disk, "", p, off); err != nil {
			t.Fatalf("read %s at %d: %v", disk, off, err)
		}
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// commandHost makes the command host driver the test's: its shutdown (a
// script in dir) logs its arguments to the returned log, stops the qemu
// whose pid is in pidFile and waits until it has exited; its start only
// logs "start" and the placeholders args names.
func commandHost(t *testing.T, dir, pidFile, args string) string {
	t.Helper()
	hostLog := filepath.Join(dir, "host.log")
	shutdown := filepath.Join(dir, "shutdown.sh")
	script := fmt.Sprintf(`# shutdown VM DISKS...: log the arguments, stop the guest's qemu, wait
# until it has exited (a zombie has: the test reaps it).
echo "shutdown $*" >>%[1]s
pid=$(cat %[2]s) || exit 1
kill -TERM "$pid" || exit 1
i=0
while [ -e /proc/$pid ] && ! grep -q ') Z ' /proc/$pid/stat 2>/dev/null; do
	i=$((i + 1))
	if [ $i -ge 300 ]; then echo "qemu (pid $pid) still runs 30 s after SIGTERM" >&2; exit 1; fi
	sleep 0.1
done
`, hostLog, pidFile)
	if err := os.WriteFile(shutdown, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ASR_HOST_DRIVER", "command")
	t.Setenv("ASR_HOST_SHUTDOWN", "sh "+shutdown+" {vm} {disks}")
	t.Setenv("ASR_HOST_START", "echo start "+args+" >>"+hostLog)
	return hostLog
}
