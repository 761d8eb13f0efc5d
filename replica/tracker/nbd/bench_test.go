package nbd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkQemuImgConvert256M copies one 256 MiB raw image (three quarters
// random data, one quarter zero runs) with qemu-img convert, in the same
// iteration both into a plain file and into an NBD export backed by a plain
// file on the same file system, and reports both rates and their ratio.
// Both targets start as fresh sparse files and both runs end with a flush
// (fdatasync for the file, NBD_CMD_FLUSH -> fsync for the export).
//
//	go test -run '^$' -bench QemuImgConvert -benchtime 3x ./replica/tracker/nbd
func BenchmarkQemuImgConvert256M(b *testing.B) {
	qemuImg := needTool(b, "qemu-img")
	const size = 256 << 20
	dir := b.TempDir()
	srcPath := filepath.Join(dir, "src.raw")
	src := writeSource(b, srcPath, size)
	directPath := filepath.Join(dir, "direct.raw")
	exportPath := filepath.Join(dir, "export.raw")
	fresh := func(path string) {
		if err := os.Truncate(path, 0); err != nil {
			b.Fatal(err)
		}
		if err := os.Truncate(path, size); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range []string{directPath, exportPath} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		fresh(p)
	}
	fb, err := openFileBackend(exportPath)
	if err != nil {
		b.Fatal(err)
	}
	defer fb.Close()
	addr, _ := start(b, &Server{Exports: map[string]Backend{"disk0": fb}, MinBlock: 512})
	url := nbdURL("disk0", addr)

	convert := func(dst string) time.Duration {
		t0 := time.Now()
		if out, err := exec.Command(qemuImg, "convert", "-n", "-O", "raw", srcPath, dst).CombinedOutput(); err != nil {
			b.Fatalf("qemu-img convert to %s: %v\n%s", dst, err, out)
		}
		return time.Since(t0)
	}
	var direct, overNBD time.Duration
	n := 0
	for b.Loop() {
		n++
		fresh(directPath)
		fresh(exportPath)
		direct += convert(directPath)
		overNBD += convert(url)
	}
	mbs := func(d time.Duration) float64 { return float64(size) * float64(n) / 1e6 / d.Seconds() }
	b.ReportMetric(mbs(direct), "file-MB/s")
	b.ReportMetric(mbs(overNBD), "nbd-MB/s")
	b.ReportMetric(mbs(overNBD)/mbs(direct), "nbd/file")

	for _, p := range []string{directPath, exportPath} {
		got, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			b.Fatalf("%s differs from the source after convert", p)
		}
	}
}

// BenchmarkQemuImgConvertNull256M is the same copy into an export that drops
// the data: what the socket path costs without any storage behind it.
func BenchmarkQemuImgConvertNull256M(b *testing.B) {
	qemuImg := needTool(b, "qemu-img")
	const size = 256 << 20
	srcPath := filepath.Join(b.TempDir(), "src.raw")
	writeSource(b, srcPath, size)
	addr, _ := start(b, &Server{Exports: map[string]Backend{"null": nullBackend{size}}, MinBlock: 512})
	b.SetBytes(size)
	for b.Loop() {
		if out, err := exec.Command(qemuImg, "convert", "-n", "-O", "raw", srcPath, nbdURL("null", addr)).CombinedOutput(); err != nil {
			b.Fatalf("qemu-img convert: %v\n%s", err, out)
		}
	}
}
