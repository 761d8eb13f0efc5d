package nbd

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool finds a qemu tool: a missing one fails the test under CI and
// skips it elsewhere.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required under CI (Debian package qemu-utils): %v", name, err)
		}
		t.Skipf("%s not installed (Debian package qemu-utils): %v", name, err)
	}
	return p
}

func nbdURL(export, sock string) string {
	return "nbd+unix:///" + export + "?socket=" + sock
}

func runTool(t testing.TB, tool string, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestQemuIO(t *testing.T) {
	qemuIO := needTool(t, "qemu-io")
	m := newMem(4<<20, 0x11)
	addr, _ := start(t, &Server{Exports: map[string]Backend{"disk0": m}, MinBlock: 512})
	out := runTool(t, qemuIO, "-f", "raw", nbdURL("disk0", addr),
		"-c", "write -P 0xab 0 1M",
		"-c", "read -P 0xab 0 1M",
		"-c", "flush",
		"-c", "write -z 1M 64k",
		"-c", "write -P 0xcd 100 10", // unaligned: qemu must read-modify-write 512 bytes
		"-c", "write -f -P 0xee 3M 4k", // FUA
		"-c", "discard 2M 64k",
		"-c", "read -P 0xcd 100 10",
		"-c", "read -P 0 1M 64k",
	)
	if strings.Contains(out, "failed") || strings.Contains(out, "error") {
		t.Fatalf("qemu-io reported a failure:\n%s", out)
	}
	data, durable, flushes := m.snapshot()
	want := bytes.Repeat([]byte{0x11}, 4<<20)
	copy(want, bytes.Repeat([]byte{0xab}, 1<<20))
	copy(want[100:], bytes.Repeat([]byte{0xcd}, 10))
	clear(want[1<<20 : 1<<20+64<<10])
	copy(want[3<<20:], bytes.Repeat([]byte{0xee}, 4096))
	if !bytes.Equal(data, want) {
		t.Fatalf("backend bytes differ from what qemu-io wrote\n%s", out)
	}
	if flushes < 2 || !bytes.Equal(durable[:1<<20][:100], want[:100]) || !bytes.Equal(durable[3<<20:][:4096], want[3<<20:][:4096]) {
		t.Fatalf("flushes %d; flushed or FUA data not durable", flushes)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.trims == 0 || m.zeroes == 0 {
		t.Fatalf("trims %d write-zeroes %d: qemu-io discard/write -z did not reach the backend", m.trims, m.zeroes)
	}
}

func TestQemuImgInfoAndUnknownExport(t *testing.T) {
	qemuImg := needTool(t, "qemu-img")
	addr, _ := start(t, &Server{Exports: map[string]Backend{"disk0": newMem(3<<20, 0)}, MinBlock: 512})
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	out := runTool(t, qemuImg, "info", "--output=json", nbdURL("disk0", addr))
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.VirtualSize != 3<<20 {
		t.Fatalf("qemu-img info: virtual-size %d (%v)\n%s", info.VirtualSize, err, out)
	}
	bad, err := exec.Command(qemuImg, "info", nbdURL("nope", addr)).CombinedOutput()
	if err == nil || !strings.Contains(string(bad), `no export named "nope"`) {
		t.Fatalf("qemu-img info on unknown export: %v\n%s", err, bad)
	}
}

// writeSource makes a raw image of data and zero runs, as a disk would be.
func writeSource(t testing.TB, path string, size int) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, size)
	for off := 0; off < size; off += 64 << 10 {
		if r.IntN(4) != 0 { // three quarters data, one quarter zeroes
			for i := off; i < off+64<<10 && i < size; i += 8 {
				be.PutUint64(src[i:], r.Uint64())
			}
		}
	}
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

// fileExport creates a file of size bytes filled with fill and serves it.
func fileExport(t testing.TB, path string, size int, fill byte) *fileBackend {
	t.Helper()
	if err := os.WriteFile(path, bytes.Repeat([]byte{fill}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := openFileBackend(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestQemuImgConvert(t *testing.T) {
	qemuImg := needTool(t, "qemu-img")
	dir := t.TempDir()
	const size = 8 << 20
	src := writeSource(t, filepath.Join(dir, "src.raw"), size)
	// The export starts non-zero, so qemu must really zero the zero runs.
	fb := fileExport(t, filepath.Join(dir, "export.raw"), size, 0x5a)
	addr, _ := start(t, &Server{Exports: map[string]Backend{"disk0": fb}, MinBlock: 512})

	runTool(t, qemuImg, "convert", "-n", "-O", "raw", filepath.Join(dir, "src.raw"), nbdURL("disk0", addr))
	got, err := os.ReadFile(filepath.Join(dir, "export.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatal("export bytes differ from the source image after qemu-img convert")
	}

	// And back out through NBD reads, with out-of-order writes on the way in.
	runTool(t, qemuImg, "convert", "-W", "-n", "-O", "raw", filepath.Join(dir, "src.raw"), nbdURL("disk0", addr))
	runTool(t, qemuImg, "convert", "-O", "raw", nbdURL("disk0", addr), filepath.Join(dir, "back.raw"))
	back, err := os.ReadFile(filepath.Join(dir, "back.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, src) {
		t.Fatal("image read back over NBD differs from the source")
	}
}
