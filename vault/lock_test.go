package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	return out
}

// TestLockVMRefusesNamesThatEscape: a VM name becomes a file name, so
// nothing may be created anywhere for a name that is not a plain one.
func TestLockVMRefusesNamesThatEscape(t *testing.T) {
	v := newVault(t)
	root := filepath.Dir(filepath.Dir(v.Path())) // the test's temp root, above the state folder
	before := names(t, root)
	for _, vm := range []string{"", "../x", "a/b", "/etc/passwd", "a\x00b", ".", "..", ".hidden", strings.Repeat("a", 65)} {
		if l, err := v.LockVM(vm); !errors.Is(err, ErrInvalid) {
			l.Unlock()
			t.Errorf("LockVM(%q): %v, want ErrInvalid", vm, err)
		}
	}
	if after := names(t, root); !slices.Equal(before, after) {
		t.Fatalf("refused names created files:\nbefore %q\nafter  %q", before, after)
	}
	l, err := v.LockVM(strings.Repeat("a", 64))
	if err != nil {
		t.Fatalf("a 64-byte name: %v", err)
	}
	l.Unlock()
}

// TestLockNeverTruncates: whatever a lock path holds keeps its length and
// everything past the holder line, through lock and unlock.
func TestLockNeverTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	data := bytes.Repeat([]byte("precious "), 1000)
	os.WriteFile(path, data, 0o600)
	l, err := LockFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if len(got) != len(data) || !bytes.Equal(got[holderWidth:], data[holderWidth:]) {
		t.Fatalf("locked: file is %d bytes, was %d, or its tail changed", len(got), len(data))
	}
	if !strings.HasPrefix(string(got), Who()) {
		t.Fatalf("holder line %q", got[:80])
	}
	l.Unlock()
	got, _ = os.ReadFile(path)
	if len(got) != len(data) || !bytes.Equal(got[holderWidth:], data[holderWidth:]) {
		t.Fatalf("unlocked: file is %d bytes, was %d, or its tail changed", len(got), len(data))
	}
}

// TestShorterHolderHidesLongerOne: a fixed-width line, so no tail of an
// earlier holder is read back.
func TestShorterHolderHidesLongerOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeHolder(f, "pid 1 ("+strings.Repeat("long ", 200)+")")
	writeHolder(f, "pid 2 (asr jobs)")
	if got := readHolder(f); got != "pid 2 (asr jobs)" {
		t.Fatalf("holder %q", got)
	}
	if fi, _ := f.Stat(); fi.Size() != holderWidth {
		t.Fatalf("lock file of %d bytes, want %d", fi.Size(), holderWidth)
	}
}

// TestLockRefusesLinksAndSpecialFiles: a lock path that is a symbolic link,
// a directory or a FIFO is refused, and the link's target is not touched.
func TestLockRefusesLinksAndSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	os.Symlink(target, filepath.Join(dir, "link.lock"))
	os.Symlink(filepath.Join(dir, "none"), filepath.Join(dir, "dangling.lock"))
	os.Mkdir(filepath.Join(dir, "dir.lock"), 0o700)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.lock"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"link.lock", "dangling.lock", "dir.lock", "fifo.lock"} {
		if l, err := LockFile(filepath.Join(dir, name), 0); err == nil || !strings.Contains(err.Error(), "not a lock file") {
			l.Unlock()
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("link target now %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "none")); err == nil {
		t.Error("the dangling link's target was created")
	}
}
