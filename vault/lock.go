package vault

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// Lock is a held flock(2) on a file that names its holder.
type Lock struct {
	f        *os.File
	writable bool
}

// holderWidth is the fixed length of the holder line. Lock files are never
// truncated (a truncate can't be undone if the path names someone else's
// file), so every holder overwrites the whole line, padded with spaces.
const holderWidth = 512

// Who describes this process in lock files: PID and command line.
func Who() string {
	return fmt.Sprintf("pid %d (%s)", os.Getpid(), strings.Join(os.Args, " "))
}

// LockFile takes an exclusive flock on path, polling until timeout. On
// timeout it returns ErrLocked naming the holder recorded in the file. It
// follows no symbolic link and refuses anything but a regular file.
func LockFile(path string, timeout time.Duration) (*Lock, error) {
	return lockFile(path, timeout, false)
}

// lockFile is LockFile; readOnly lets it lock a file it may only read (a
// View on a read-only mount), without recording the holder.
func lockFile(path string, timeout time.Duration, readOnly bool) (*Lock, error) {
	f, writable, err := openLock(path, readOnly)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			holder := readHolder(f)
			f.Close()
			if holder == "" {
				holder = "another asr process"
			}
			return nil, fmt.Errorf("%s is held by %s; wait for it to finish or stop it: %w", path, holder, ErrLocked)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if writable {
		writeHolder(f, Who())
	}
	return &Lock{f: f, writable: writable}, nil
}

func openLock(path string, readOnly bool) (*os.File, bool, error) {
	// Lstat first so a device or FIFO is never even opened; O_NOFOLLOW and
	// the Stat after the open close the race with a swap.
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, false, notRegular(path, fi.Mode())
	}
	const flags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|flags, 0o600)
	writable := true
	if err != nil && readOnly && isAccess(err) {
		f, err = os.OpenFile(path, os.O_RDONLY|flags, 0)
		writable = false
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, false, notRegular(path, os.ModeSymlink)
	}
	if err != nil {
		if isAccess(err) {
			return nil, false, accessOr(path, err)
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(path, fi.Mode())
	}
	if err != nil {
		f.Close()
		return nil, false, err
	}
	return f, writable, nil
}

func notRegular(path string, m os.FileMode) error {
	return fmt.Errorf("lock %s is a %s, not a lock file; asr only locks regular files: remove it", path, fileType(m))
}

// writeHolder writes who as the holder line at offset 0, padded to
// holderWidth so no longer line written before shows through.
func writeHolder(f *os.File, who string) {
	if len(who) > holderWidth-1 {
		who = who[:holderWidth-4] + "..."
	}
	f.WriteAt([]byte(who+strings.Repeat(" ", holderWidth-1-len(who))+"\n"), 0)
}

func readHolder(f *os.File) string {
	b := make([]byte, holderWidth)
	n, _ := f.ReadAt(b, 0)
	return strings.TrimSpace(string(b[:n]))
}

// Unlock releases the lock. The file stays, so its inode is never swapped
// under a waiting process; its holder line is blanked, never truncated.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	if l.writable {
		writeHolder(l.f, "")
	}
	err := l.f.Close() // closing releases the flock
	l.f = nil
	return err
}

// checkLockName refuses a VM name that can't safely name a file in the
// locks folder.
func checkLockName(vm string) error {
	if vm == "" || len(vm) > 64 || strings.HasPrefix(vm, ".") || strings.ContainsAny(vm, "/\x00") {
		return fmt.Errorf("VM name %q can't name a lock file: use 1-64 bytes, no '/' or NUL, not starting with '.': %w", vm, ErrInvalid)
	}
	return nil
}
