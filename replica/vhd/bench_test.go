package vhd

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/asr-project/asr/replica/vhd/qemutest"
	"golang.org/x/sys/unix"
)

const benchSize = 256 << 20

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchFiles makes, once per process, a 256 MiB raw file of non-zero data
// and the same disk as a fully allocated dynamic VHD written by qemu-img.
func benchFiles(b *testing.B) (raw, dyn string) {
	qemutest.Need(b, "qemu-img")
	benchOnce.Do(func() {
		if benchDir, benchErr = os.MkdirTemp("", "vhdbench"); benchErr != nil {
			return
		}
		f, err := os.Create(filepath.Join(benchDir, "disk.raw"))
		if err != nil {
			benchErr = err
			return
		}
		for i := range benchSize >> 20 {
			if _, err := f.Write(pattern(1<<20, byte(i|1))); err != nil {
				benchErr = err
			}
		}
		f.Close()
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	raw, dyn = filepath.Join(benchDir, "disk.raw"), filepath.Join(benchDir, "disk.vhd")
	if _, err := os.Stat(dyn); err != nil {
		run(b, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", raw, dyn)
	}
	return raw, dyn
}

// benchRead reads the disk sequentially; cold drops the file from the
// page cache before each pass (outside the timer) so it reads the device.
func benchRead(b *testing.B, path string, typ Type, cold bool) {
	d, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if d.Type() != typ || d.Size() != benchSize {
		b.Fatalf("%s: type %s size %d", path, d.Type(), d.Size())
	}
	if typ == TypeDynamic {
		if n, _ := d.AllocatedBytes(); n != benchSize {
			b.Fatalf("dynamic disk has %d allocated bytes, want all", n)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(benchSize)
	for b.Loop() {
		if cold {
			b.StopTimer()
			if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		for off := int64(0); off < benchSize; off += int64(len(buf)) {
			if _, err := d.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReadDynamic reads a fully allocated 256 MiB dynamic VHD
// sequentially in 1 MiB buffers; compare with BenchmarkReadRaw.
func BenchmarkReadDynamic(b *testing.B) {
	_, dyn := benchFiles(b)
	b.Run("cached", func(b *testing.B) { benchRead(b, dyn, TypeDynamic, false) })
	b.Run("cold", func(b *testing.B) { benchRead(b, dyn, TypeDynamic, true) })
}

// BenchmarkReadRaw reads the same data from a raw file.
func BenchmarkReadRaw(b *testing.B) {
	raw, _ := benchFiles(b)
	b.Run("cached", func(b *testing.B) { benchRead(b, raw, TypeRaw, false) })
	b.Run("cold", func(b *testing.B) { benchRead(b, raw, TypeRaw, true) })
}
