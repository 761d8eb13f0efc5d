package vault

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// roMount makes a tmpfs under a fresh directory and returns it. The tests
// run as root, whom permission bits don't stop, so a read-only mount is the
// way to make writes fail.
func roMount(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a read-only file system")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("can't mount a tmpfs (%v): a read-only file system is needed for this test", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

func remountRO(t *testing.T, path string, bind bool) {
	t.Helper()
	flags := uintptr(syscall.MS_REMOUNT | syscall.MS_RDONLY)
	if bind {
		if err := syscall.Mount(path, path, "", syscall.MS_BIND, ""); err != nil {
			t.Skipf("bind mount %s: %v", path, err)
		}
		t.Cleanup(func() { syscall.Unmount(path, syscall.MNT_DETACH) })
		flags |= syscall.MS_BIND
	}
	if err := syscall.Mount("", path, "", flags, ""); err != nil {
		t.Skipf("remount %s read-only: %v", path, err)
	}
}

func sitedVault(t *testing.T, dir string) *Vault {
	t.Helper()
	v, err := Init(filepath.Join(dir, "site.db"), "primary", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	putJobs(t, v, Job{VM: "web", State: JobRunning})
	return v
}

// TestReadOnlyStateFileIsErrAccess: the file alone is read-only (bind
// mounted over itself), its folder is not. Writes fail with ErrAccess;
// reads still work.
func TestReadOnlyStateFileIsErrAccess(t *testing.T) {
	v := sitedVault(t, roMount(t))
	remountRO(t, v.Path(), true)
	before := fileHash(t, v.Path())
	err := v.Update(func(tx *Tx) error { return tx.PutPolicy(Policy{Name: "x"}) })
	if !errors.Is(err, ErrAccess) {
		t.Fatalf("update: %v, want ErrAccess", err)
	}
	t.Log(err)
	if err := v.View(readAll); err != nil {
		t.Fatalf("view of a read-only file: %v", err)
	}
	if err := v.SweepJobs(); err != nil {
		t.Fatalf("sweep: %v, want it to leave the job for later", err)
	}
	if fileHash(t, v.Path()) != before {
		t.Fatal("the read-only file changed")
	}
}

// TestReadOnlyStateFolderIsErrAccess: the whole folder is read-only, lock
// files included. Writes and VM locks fail with ErrAccess; reads work.
func TestReadOnlyStateFolderIsErrAccess(t *testing.T) {
	dir := roMount(t)
	v := sitedVault(t, dir)
	remountRO(t, dir, false)
	err := v.Update(func(tx *Tx) error { return tx.PutPolicy(Policy{Name: "x"}) })
	if !errors.Is(err, ErrAccess) {
		t.Fatalf("update: %v, want ErrAccess", err)
	}
	t.Log(err)
	if _, err := v.LockVM("web"); !errors.Is(err, ErrAccess) {
		t.Fatalf("LockVM: %v, want ErrAccess", err)
	}
	if err := v.View(readAll); err != nil {
		t.Fatalf("view on a read-only mount: %v", err)
	}
	if _, err := Check(v.Path()); err != nil {
		t.Fatalf("check on a read-only mount: %v", err)
	}
	if _, err := Init(filepath.Join(dir, "other.db"), "b", time.Second); !errors.Is(err, ErrAccess) {
		t.Fatalf("init: %v, want ErrAccess", err)
	}
}
