package host

import (
	"context"
	"encoding/xml"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLibvirtBootsAGuest drives a real libvirtd (.ci/libvirt/libvirtd.sh
// starts one; ASR_LIBVIRT_URI names it): a direct-kernel guest (built by
// .ci/guest/build.sh) started isolated makes a file system on its disk;
// started again in check mode on the same disk it finds its
// files; Shutdown of a guest that ignores it destroys it after the
// timeout; Remove leaves libvirt knowing nothing of it. It skips without
// ASR_LIBVIRT_URI unless CI is set.
func TestLibvirtBootsAGuest(t *testing.T) {
	uri := os.Getenv("ASR_LIBVIRT_URI")
	if uri == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("ASR_LIBVIRT_URI is not set; run the tests with bash .ci/test")
		}
		t.Skip(`no libvirtd: eval "$(.ci/libvirt/libvirtd.sh start)" first`)
	}
	if testing.Short() {
		t.Skip("boots qemu guests; not with -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	kernel, initrd := buildGuest(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "os.vhd")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20+512); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Driver: "libvirt", URI: uri, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vm := VM{Name: fmt.Sprintf("asr-test-%d", rand.Int64()), Disks: []string{disk}, Dir: dir, MemoryMiB: 256, Network: "default",
		Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 panic=-1 quiet asr.mode=write"}
	t.Cleanup(func() { h.Remove(context.Background(), vm) })

	if err := h.Start(ctx, vm, true); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, vm.Name+".xml"))
	if err != nil {
		t.Fatal(err)
	}
	var d domain
	if err := xml.Unmarshal(data, &d); err != nil || len(d.Devices.Interfaces) != 0 || d.Type != "qemu" || len(d.Devices.Disks) != 1 {
		t.Fatalf("isolated domain XML (err %v) must be type qemu with one disk and no interface:\n%s", err, data)
	}
	if err := h.Start(ctx, vm, true); err != nil {
		t.Fatalf("a second start of a running VM: %v", err)
	}
	waitConsole(t, ctx, h.(libvirt), vm, "ASR-GUEST-WRITE-OK")
	// The guest halts when done (busybox's poweroff under TCG); it
	// ignores the graceful request, so Shutdown destroys it after the
	// timeout.
	if err := h.Shutdown(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if st, err := h.(libvirt).state(ctx, vm.Name); err != nil || st != "shut off" {
		t.Fatalf("after Shutdown %s is %q (%v), want shut off", vm.Name, st, err)
	}

	vm.Cmdline = "console=ttyS0 panic=-1 quiet asr.mode=check"
	if err := h.Start(ctx, vm, true); err != nil {
		t.Fatal(err)
	}
	waitConsole(t, ctx, h.(libvirt), vm, "ASR-GUEST-CHECK-OK")
	if err := h.Remove(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if st, err := h.(libvirt).state(ctx, vm.Name); err != nil || st != "" {
		t.Fatalf("after Remove libvirt still knows %s: state %q, %v", vm.Name, st, err)
	}
	if err := h.Remove(ctx, vm); err != nil {
		t.Fatalf("removing a VM that is gone: %v", err)
	}
}

// waitConsole waits until the guest's console log holds the marker.
func waitConsole(t *testing.T, ctx context.Context, l libvirt, vm VM, marker string) {
	t.Helper()
	log := filepath.Join(vm.Dir, vm.Name+".console.log")
	for ctx.Err() == nil {
		data, _ := os.ReadFile(log)
		if strings.Contains(string(data), strings.Replace(marker, "-OK", "-FAIL", 1)) {
			t.Fatalf("guest failed:\n%s", data)
		}
		if strings.Contains(string(data), marker) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	data, _ := os.ReadFile(log)
	t.Fatalf("no %s from the guest:\n%s", marker, data)
}

// buildGuest runs .ci/guest/build.sh into the guest cache and returns the
// kernel and initramfs.
func buildGuest(t *testing.T) (string, string) {
	cache := os.Getenv("ASR_GUEST_CACHE")
	if cache == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(d, "asr-guest")
	}
	out, err := exec.Command("bash", "../../.ci/guest/build.sh", cache).CombinedOutput()
	if err != nil {
		t.Fatalf("build the guest: %v\n%s", err, out)
	}
	var kernel, initrd string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "KERNEL="); ok {
			kernel = v
		}
		if v, ok := strings.CutPrefix(line, "INITRD="); ok {
			initrd = v
		}
	}
	if kernel == "" || initrd == "" {
		t.Fatalf("build.sh printed no KERNEL= and INITRD=:\n%s", out)
	}
	return kernel, initrd
}
