package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLibvirtGuest protects a libvirt domain whose disk is a qcow2 by the
// domain's name, wires the domain to asr's NBD sockets (asr track
// --libvirt --apply), starts it through libvirt on them with asr track
// running, and lets the guest make a file system and write files. After
// asr replicate and a clean stop of the tracker, the exported point must
// equal what qemu-img convert makes of the qcow2, byte for byte; asr
// untrack --libvirt must give the domain its file back. It needs a
// libvirtd (ASR_LIBVIRT_URI, from .ci/libvirt/libvirtd.sh) and skips
// without one unless CI is set.
func TestLibvirtGuest(t *testing.T) {
	uri := os.Getenv("ASR_LIBVIRT_URI")
	if uri == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("ASR_LIBVIRT_URI is not set; run the tests with bash .ci/test")
		}
		t.Skip(`no libvirtd: eval "$(.ci/libvirt/libvirtd.sh start)" first`)
	}
	if testing.Short() {
		t.Skip("boots a qemu guest; not with -short")
	}
	ctx := t.Context()
	dir := t.TempDir()
	g := &guestRun{t: t, ctx: ctx}
	t.Cleanup(g.dump)
	kit := newGuestKit(g, dir)
	state := filepath.Join(dir, "site.db")
	asrRun := func(args ...string) string {
		return g.run("asr "+args[0], kit.asr, append([]string{"--state", state, "--config", filepath.Join(dir, "asr.yaml")}, args...)...)
	}
	virsh := func(args ...string) string {
		return g.run("virsh "+args[0], "virsh", append([]string{"-q", "-c", uri}, args...)...)
	}
	if err := os.WriteFile(filepath.Join(dir, "asr.yaml"), []byte("host:\n  driver: libvirt\n  uri: "+uri+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "vm", "os.qcow2")
	sock := filepath.Join(dir, "sock")
	for _, d := range []string{filepath.Dir(disk), sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	g.run("qemu-img create", kit.qemuImg, "create", "-q", "-f", "qcow2", disk, "64M")
	name := fmt.Sprintf("asr-lv-%d", rand.Int64())
	console := filepath.Join(dir, "console.log")
	domXML := filepath.Join(dir, "domain.xml")
	if err := os.WriteFile(domXML, []byte(fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet asr.mode=write</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='%s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'>
      <log file='%s'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
`, name, kit.kernel, kit.initrd, disk, console)), 0o600); err != nil {
		t.Fatal(err)
	}
	virsh("define", domXML)
	t.Cleanup(func() {
		exec.Command("virsh", "-q", "-c", uri, "destroy", name).Run()
		exec.Command("virsh", "-q", "-c", uri, "undefine", name).Run()
	})

	asrRun("init", "--site", "primary")
	asrRun("enable-protection", "web", "--libvirt="+name, "--target", "file://"+filepath.Join(dir, "target"))
	wired := asrRun("track", "web", "--libvirt", "--apply", "--socket-dir", sock)
	if !strings.Contains(wired, "now reaches its disks through asr's sockets") {
		t.Fatalf("asr track --libvirt --apply said:\n%s", wired)
	}
	if x := virsh("dumpxml", "--inactive", name); !strings.Contains(x, "protocol='nbd'") || !strings.Contains(x, filepath.Join(sock, "web-os.sock")) {
		t.Fatalf("the domain does not take its disk from asr's socket:\n%s", x)
	}

	tracker := g.start("asr track", kit.asr, "--state", state, "track", "web", "--socket-dir", sock)
	tracker.waitDrive(t, 30*time.Second)
	virsh("start", name)
	// The guest flushes its disk before it says OK; busybox's poweroff
	// only halts it under TCG, so it is destroyed then.
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(readOr(console), "ASR-GUEST-WRITE-OK") {
		if strings.Contains(readOr(console), "ASR-GUEST-WRITE-FAIL") || time.Now().After(deadline) {
			t.Fatalf("the guest did not write its files; console:\n%s", readOr(console))
		}
		time.Sleep(500 * time.Millisecond)
	}
	virsh("destroy", name)
	if written, ok := guestSums([]byte(readOr(console)), "write"); !ok || len(written) != 3 {
		t.Fatalf("the guest's checksums: %q; console:\n%s", written, readOr(console))
	}

	asrRun("replicate", "web")
	if err := syscall.Kill(tracker.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tracker.done:
		if tracker.err != nil {
			t.Fatalf("asr track after SIGTERM: %v\n%s", tracker.err, tracker.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("asr track did not exit within 30 s of SIGTERM")
	}
	asrRun("replicate", "web")
	export := filepath.Join(dir, "export")
	asrRun("points", "export", "web", "--dir", export)
	raw := filepath.Join(dir, "convert.raw")
	g.run("qemu-img convert", kit.qemuImg, "convert", "-f", "qcow2", "-O", "raw", disk, raw)
	if out := g.run("qemu-img compare", kit.qemuImg, "compare", "-f", "raw", "-F", "vpc", raw, filepath.Join(export, "os.vhd")); !strings.Contains(out, "Images are identical") {
		t.Fatalf("the point differs from qemu-img convert of the qcow2:\n%s", out)
	}

	asrRun("untrack", "web", "--libvirt")
	if x := virsh("dumpxml", "--inactive", name); strings.Contains(x, "protocol='nbd'") || !strings.Contains(x, disk) {
		t.Fatalf("asr untrack --libvirt did not restore the file disk:\n%s", x)
	}
}

func readOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
