package tracker

import (
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/asr-project/asr/replica/tracker/nbd"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/replica/vhd/qemutest"
)

const benchSize = 256 << 20

func benchSource(b *testing.B) string {
	b.Helper()
	src := filepath.Join(b.TempDir(), "src.raw")
	p := make([]byte, benchSize)
	rand.Read(p)
	if err := os.WriteFile(src, p, 0o644); err != nil {
		b.Fatal(err)
	}
	return src
}

// BenchmarkConvertPlain is the peer: qemu-img convert into a plain file.
func BenchmarkConvertPlain(b *testing.B) {
	qemu := qemutest.Need(b, "qemu-img")
	src := benchSource(b)
	b.SetBytes(benchSize)
	for range b.N {
		dst := filepath.Join(b.TempDir(), "dst.raw")
		os.WriteFile(dst, nil, 0o644)
		os.Truncate(dst, benchSize)
		if out, err := exec.Command(qemu, "convert", "-n", "-f", "raw", "-O", "raw", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

// BenchmarkConvertTracked is qemu-img convert into a tracked fixed VHD
// served over NBD: every write logged, then written.
func BenchmarkConvertTracked(b *testing.B) {
	qemu := qemutest.Need(b, "qemu-img")
	src := benchSource(b)
	b.SetBytes(benchSize)
	for range b.N {
		dir := b.TempDir()
		path := filepath.Join(dir, "disk.vhd")
		d, err := vhd.CreateFixed(path, benchSize)
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
		tr, err := Start([]DiskSpec{{Name: "disk", Path: path}}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		sock := filepath.Join(dir, "s.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		s := &nbd.Server{Exports: map[string]nbd.Backend{"disk": tr.Disks()[0]}, MinBlock: 512}
		go s.Serve(l)
		if out, err := exec.Command(qemu, "convert", "-n", "-f", "raw", "-O", "raw", src, "nbd+unix:///disk?socket="+sock).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		s.Shutdown(b.Context())
		tr.Close()
	}
}
