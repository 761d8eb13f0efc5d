package tracker

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/image"
)

// qemuChild finds the qemu-nbd serving path among this process's children.
func qemuChild(t *testing.T, path string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		cmd, err := os.ReadFile(dir + "/cmdline")
		if err != nil || !bytes.Contains(cmd, []byte("qemu-nbd")) || !bytes.Contains(cmd, []byte(path)) {
			continue
		}
		stat, _ := os.ReadFile(dir + "/stat")
		// Field 4 of stat, after the parenthesised command name, is the parent.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			return pid
		}
	}
	t.Fatalf("no qemu-nbd child serves %s", path)
	return 0
}

// A qcow2 disk is served through a qemu-nbd child. When the child dies
// the disk degrades at once, with the reason, before any guest write
// trips over it; the guest's writes then fail visibly.
func TestQemuChildDies(t *testing.T) {
	qemuImg := imageLockTool(t, "qemu-img")
	imageLockTool(t, "qemu-nbd")
	p := filepath.Join(t.TempDir(), "os.qcow2")
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", p, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	tr, err := Start([]DiskSpec{{Name: "os", Path: p, Format: image.Format("qcow2")}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	d := tr.Disks()[0]
	write(t, d, 1<<20, 65536, 0x5a)
	got := make([]byte, 65536)
	if _, err := d.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, fill(65536, 0x5a)) {
		t.Fatalf("read back through qemu-nbd: %v", err)
	}
	if err := syscall.Kill(qemuChild(t, p), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Stats().Degraded == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if why := d.Stats().Degraded; !strings.Contains(why, "qemu-nbd serving the disk exited") || !strings.Contains(why, "killed") {
		t.Fatalf("degraded %q, want the child's death", why)
	}
	if _, err := d.WriteAt(fill(4096, 1), 0); err == nil {
		t.Fatal("a guest write succeeded with qemu-nbd dead")
	}
	if !marked(t, p, 1<<20, 65536) {
		t.Fatal("the dirty map misses the write the dropped log held")
	}
}
