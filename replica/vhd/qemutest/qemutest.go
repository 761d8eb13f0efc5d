// Package qemutest runs qemu-utils (qemu-img, qemu-io, qemu-nbd) from tests
// to make and check reference disk images. Tools are looked up on $PATH; a
// missing tool skips the test, or fails it when $CI is set, so CI cannot go
// green without the cross-checks.
package qemutest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Need returns the path of tool, or stops the test if it is not installed.
func Need(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found on $PATH (install Debian's qemu-utils): %v", tool, err)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// run executes tool with args and fails the test with its output on error.
func run(t testing.TB, tool string, args ...string) string {
	t.Helper()
	out, err := exec.Command(Need(t, tool), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Create makes a VHD of exactly size bytes with qemu-img; subformat is
// "fixed" or "dynamic".
func Create(t testing.TB, path, subformat string, size int64) {
	t.Helper()
	run(t, "qemu-img", "create", "-q", "-f", "vpc",
		"-o", "subformat="+subformat+",force_size=on", path, fmt.Sprint(size))
}

// CreateFormat makes an image of size bytes in any format qemu-img
// writes (qcow2, vhdx, vmdk, qed, vdi, raw, ...), with -o options if not "".
func CreateFormat(t testing.TB, path, format, options string, size int64) {
	t.Helper()
	args := []string{"create", "-q", "-f", format}
	if options != "" {
		args = append(args, "-o", options)
	}
	run(t, "qemu-img", append(args, path, fmt.Sprint(size))...)
}

// Write fills n bytes at off with pattern through qemu-io.
func Write(t testing.TB, path, format string, off, n int64, pattern byte) {
	t.Helper()
	run(t, "qemu-io", "-f", format, "-c",
		fmt.Sprintf("write -P %d %d %d", pattern, off, n), path)
}

// ToRaw converts src (in format) to the raw image dst with qemu-img.
func ToRaw(t testing.TB, src, format, dst string) {
	t.Helper()
	run(t, "qemu-img", "convert", "-f", format, "-O", "raw", src, dst)
}

// Compare fails the test when qemu-img compare finds the images differ.
func Compare(t testing.TB, a, aFmt, b, bFmt string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(Need(t, "qemu-img"), "compare", "-f", aFmt, "-F", bFmt, a, b)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("qemu-img compare %s (%s) %s (%s): %v\n%s", a, aFmt, b, bFmt, err, out.String())
	}
}
