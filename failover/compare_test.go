package failover

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/vhd"
)

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "a.raw")
	data := make([]byte, 3<<20+512) // not a multiple of 1 MiB
	copy(data[5<<19:], "payload")
	os.WriteFile(raw, data, 0o644)
	// A fixed VHD rounded up to 1 MiB with the same bytes is equal.
	fixed := filepath.Join(dir, "b.vhd")
	d, err := vhd.CreateFixed(fixed, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	d.WriteAt(data, 0)
	d.Close()
	if err := Compare(raw, fixed); err != nil {
		t.Fatalf("equal disks: %v", err)
	}
	// One byte apart, named by its offset.
	d, _ = vhd.OpenWritable(fixed)
	d.WriteAt([]byte{1}, 3<<20)
	d.Close()
	err = Compare(raw, fixed)
	if !errors.Is(err, replica.ErrMismatch) || !strings.Contains(err.Error(), "offset 3145728") {
		t.Fatalf("got %v, want a mismatch at offset 3145728", err)
	}
}
