package footer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/replica/vhd/qemutest"
)

func TestForKeepsIdentity(t *testing.T) {
	const from, to = 3 << 20, 7 << 20
	created := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	old := vhd.FixedFooter(from, id, created)
	got := For(old, to)
	if want := vhd.FixedFooter(to, id, created); !bytes.Equal(got, want) {
		t.Fatalf("For(old, %d) differs from a fresh footer with the same id and time", to)
	}
	be := binary.BigEndian
	if be.Uint64(got[40:]) != to || be.Uint64(got[48:]) != to {
		t.Errorf("sizes %d/%d, want %d", be.Uint64(got[40:]), be.Uint64(got[48:]), to)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		size int64
		fits bool
	}{
		{"its own size", old, from, true},
		{"another size", old, to, false},
		{"grown", got, to, true},
		{"zeros", make([]byte, Size), from, false},
		{"short", old[:100], from, false},
		{"bad checksum", append(bytes.Clone(old[:Size-1]), old[Size-1]^1), from, false},
	} {
		if Fits(tc.b, tc.size) != tc.fits {
			t.Errorf("Fits(%s, %d) = %v, want %v", tc.name, tc.size, !tc.fits, tc.fits)
		}
	}
}

func TestForFresh(t *testing.T) {
	a, b := For(make([]byte, Size), 1<<20), For(nil, 1<<20)
	if !Fits(a, 1<<20) || !Fits(b, 1<<20) {
		t.Fatal("a fresh footer does not fit its own size")
	}
	if bytes.Equal(a[uniqueID:uniqueID+16], b[uniqueID:uniqueID+16]) {
		t.Error("two fresh footers share a unique id")
	}
}

// TestForQemu: qemu-img reads a grown footer as a fixed VHD of the new size.
func TestForQemu(t *testing.T) {
	qemu := qemutest.Need(t, "qemu-img")
	const from, to = 2 << 20, 5 << 20
	path := filepath.Join(t.TempDir(), "d.vhd")
	old := For(nil, from)
	if err := os.WriteFile(path, append(make([]byte, to), For(old, to)...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(qemu, "info", "--output=json", "-f", "vpc", path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.VirtualSize != to {
		t.Fatalf("qemu-img info: virtual size %d (%v), want %d\n%s", info.VirtualSize, err, to, out)
	}
}
