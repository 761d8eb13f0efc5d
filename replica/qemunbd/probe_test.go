package qemunbd

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/vhd/qemutest"
)

// TestProbeQemuImages: Probe names what qemu-img made, and agrees with
// qemu's own probing wherever qemu probes the format.
func TestProbeQemuImages(t *testing.T) {
	for _, c := range []struct {
		name, format, options, want string
		qemuSeesRaw                 bool // qemu does not probe it
	}{
		{"qcow2", "qcow2", "", "qcow2", false},
		{"qcow2 v2", "qcow2", "compat=0.10", "qcow2", false},
		{"qcow", "qcow", "", "qcow", false},
		{"vhdx", "vhdx", "", "vhdx", false},
		{"vmdk monolithicSparse", "vmdk", "", "vmdk", false},
		{"vmdk descriptor", "vmdk", "subformat=twoGbMaxExtentSparse", "vmdk", false},
		{"vmdk flat descriptor", "vmdk", "subformat=monolithicFlat", "vmdk", false},
		{"vpc dynamic", "vpc", "subformat=dynamic", "vpc", false},
		{"vpc fixed", "vpc", "subformat=fixed", "vpc", true},
		{"vdi", "vdi", "", "vdi", false},
		{"qed", "qed", "", "qed", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "disk."+c.format)
			qemutest.CreateFormat(t, p, c.format, c.options, 8<<20)
			got, err := Probe(p)
			if err != nil || got != c.want {
				t.Fatalf("Probe = %q, %v; want %q", got, err, c.want)
			}
			if q := qemuProbe(t, p); c.qemuSeesRaw != (q == "raw") || !c.qemuSeesRaw && q != got {
				t.Fatalf("qemu-img info probes %q, Probe %q", q, got)
			}
		})
	}
}

// qemuProbe is the format qemu-img info finds by probing.
func qemuProbe(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(qemutest.Need(t, "qemu-img"), "info", "--output=json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var info struct{ Format string }
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("qemu-img info %s: %v in %s", path, err, out)
	}
	return info.Format
}

// TestProbeRaw: raw is never guessed.
func TestProbeRaw(t *testing.T) {
	tmp := t.TempDir()
	zeros := filepath.Join(tmp, "zeros.img")
	qemutest.CreateFormat(t, zeros, "raw", "", 8<<20)
	text := filepath.Join(tmp, "text.img")
	os.WriteFile(text, []byte(strings.Repeat("# a comment\nversion=9\n", 200)), 0o644)
	empty := filepath.Join(tmp, "empty.img")
	os.WriteFile(empty, nil, 0o644)
	for _, p := range []string{zeros, text, empty} {
		if f, err := Probe(p); !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "--format raw") {
			t.Errorf("Probe(%s) = %q, %v; want ErrUnknownFormat pointing to --format raw", filepath.Base(p), f, err)
		}
	}
}

// TestProbeAmbiguous: a qcow2 made by qemu-img with a VHD footer appended
// is refused, and the operator is told to pass --format.
func TestProbeAmbiguous(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.qcow2")
	qemutest.CreateFormat(t, p, "qcow2", "", 8<<20)
	footer := make([]byte, footerSize)
	copy(footer, "conectix")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(footer)
	f.Close()
	got, err := Probe(p)
	if !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("Probe = %q, %v; want ErrAmbiguous", got, err)
	}
	for _, w := range []string{"qcow2", "vpc", "--format"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// TestProbeFIFO: a FIFO is refused without being opened (an open would
// block with no writer).
func TestProbeFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Probe(p); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "FIFO") {
			t.Fatalf("Probe(FIFO) = %v; want a refusal naming the FIFO", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Probe blocked on a FIFO")
	}
}

// TestSignatures pins the rules of the package doc on crafted bytes.
func TestSignatures(t *testing.T) {
	sized := func(n int, parts ...any) []byte {
		b := make([]byte, n)
		for i := 0; i < len(parts); i += 2 {
			switch v := parts[i+1].(type) {
			case string:
				copy(b[parts[i].(int):], v)
			case uint32:
				binary.LittleEndian.PutUint32(b[parts[i].(int):], v)
			}
		}
		return b
	}
	footer := sized(512, 0, "conectix")
	for _, c := range []struct {
		name       string
		head, tail []byte
		want       []string
	}{
		{"qcow2 v3", []byte("QFI\xfb\x00\x00\x00\x03"), nil, []string{"qcow2"}},
		{"qcow2 v2", []byte("QFI\xfb\x00\x00\x00\x02"), nil, []string{"qcow2"}},
		{"qcow v1", []byte("QFI\xfb\x00\x00\x00\x01"), nil, []string{"qcow"}},
		{"qcow version 0", []byte("QFI\xfb\x00\x00\x00\x00"), nil, nil},
		{"qcow magic only", []byte("QFI\xfb"), nil, nil},
		{"vhdx", []byte("vhdxfile"), nil, []string{"vhdx"}},
		{"vmdk4", []byte("KDMV"), nil, []string{"vmdk"}},
		{"vmdk3", []byte("COWD"), nil, []string{"vmdk"}},
		{"vmdk text", []byte("# Disk DescriptorFile\nversion=1\n"), nil, []string{"vmdk"}},
		{"vmdk header only", []byte("# Disk DescriptorFile"), nil, []string{"vmdk"}},
		{"vmdk comments and blanks", []byte("# a\n   \n  \r\nversion=3\r\nCID=1\n"), nil, []string{"vmdk"}},
		{"vmdk version 2 first", []byte("version=2\n"), nil, []string{"vmdk"}},
		{"text, empty line", []byte("# a\n\nversion=1\n"), nil, nil},
		{"text, version 4", []byte("# a\nversion=4\n"), nil, nil},
		{"text, no newline", []byte("# a\nversion=1"), nil, nil},
		{"vdi", sized(512, 0, "<<< VirtualBox >>>", 0x40, uint32(0xbeda107f)), nil, []string{"vdi"}},
		{"vdi short", sized(511, 0x40, uint32(0xbeda107f)), nil, nil},
		{"qed", sized(64, 0, "QED\x00"), nil, []string{"qed"}},
		{"qed short", []byte("QED\x00"), nil, nil},
		{"vpc head", []byte("conectix"), nil, []string{"vpc"}},
		{"vpc tail", make([]byte, 512), footer, []string{"vpc"}},
		{"vpc both", footer, footer, []string{"vpc"}},
		{"qcow2 and vpc tail", []byte("QFI\xfb\x00\x00\x00\x03"), footer, []string{"qcow2", "vpc"}},
		{"qcow2 and vdi", sized(512, 0, "QFI\xfb\x00\x00\x00\x03", 0x40, uint32(0xbeda107f)), nil, []string{"qcow2", "vdi"}},
		{"nothing", make([]byte, 2048), make([]byte, 512), nil},
		{"empty", nil, nil, nil},
	} {
		var got []string
		for _, s := range signatures(c.head, c.tail) {
			got = append(got, s.format)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: signatures = %q, want %q", c.name, got, c.want)
		}
	}
}

// FuzzSignatures: any bytes give each format at most once, and never a
// panic.
func FuzzSignatures(f *testing.F) {
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"), []byte("conectix"))
	f.Add([]byte("# c\n \nversion=1\r\n"), []byte(nil))
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		if len(head) > probeSize {
			head = head[:probeSize]
		}
		seen := map[string]bool{}
		for _, s := range signatures(head, tail) {
			if seen[s.format] || s.where == "" {
				t.Fatalf("signatures(%q, %q): %q twice or without a reason", head, tail, s.format)
			}
			seen[s.format] = true
		}
	})
}
