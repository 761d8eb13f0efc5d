package tracker

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrInUse: another process (qemu, qemu-img, qemu-io, or another asr track)
// has the disk open in a way that conflicts.
var ErrInUse = errors.New("disk in use by another process")

// qemu's image-locking protocol (block/file-posix.c): a process holding
// permission bit i read-locks byte permBase+i, and one that won't share
// bit i read-locks byte sharedBase+i. Read locks never conflict with each
// other, so the bytes only announce; a would-be opener tests them for
// others' locks with F_OFD_GETLK. Bit numbers follow qemu's BLK_PERM_*
// enum (include/block/block-common.h). Bit 4 (the old GRAPH_MOD) is gone
// since qemu 6.2; we neither hold nor unshare it, so it can't conflict.
const (
	permBase   = 100
	sharedBase = 200
)

var permNames = [...]string{"consistent read", "write", "write unchanged", "resize"}

const (
	permConsistentRead = 1 << iota
	permWrite
	permWriteUnchanged
	permResize
)

// What a qemu process holds with the image open read-write, sharing neither
// write nor resize: the tracker is the only writer, and a resize under it
// would break the log's idea of the disk.
const (
	heldPerms     = permConsistentRead | permWrite | permResize
	unsharedPerms = permWrite | permResize
)

// ImageLock holds qemu's image locks on one disk file.
type ImageLock struct {
	mu   sync.Mutex
	fd   int // -1 once closed
	path string
}

// LockImage opens path on a descriptor of its own and takes the locks a
// qemu process holds when it has the image open read-write and shares
// neither write nor resize (it holds consistent read, write and resize;
// it unshares write and resize). If anyone else holds write or resize, or
// unshares consistent read, write or resize, it takes nothing and returns
// an error wrapping ErrInUse that names the file and the permission.
//
// The locks are open-file-description locks, so they belong to this
// descriptor, not to the process: a second LockImage of the same file,
// even from this process and by another name (symlink, hard link), is
// refused. They last until Close, or until the process exits.
//
// Like qemu, it locks first and checks second: of two openers racing,
// each sees the other's bytes, so at worst both are refused, never both
// admitted.
func LockImage(path string) (*ImageLock, error) {
	// Read access suffices for read locks and for testing; O_CLOEXEC so a
	// child process never inherits (and so prolongs) the locks.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("lock disk %s: %w", path, err)
	}
	l := &ImageLock{fd: fd, path: path}
	if err := l.lockAndCheck(); err != nil {
		unix.Close(fd) // drops whatever was locked
		return nil, err
	}
	return l, nil
}

func (l *ImageLock) lockAndCheck() error {
	for i := range permNames {
		if heldPerms&(1<<i) != 0 {
			if err := l.announce(permBase + i); err != nil {
				return err
			}
		}
		if unsharedPerms&(1<<i) != 0 {
			if err := l.announce(sharedBase + i); err != nil {
				return err
			}
		}
	}
	for i, name := range permNames {
		if heldPerms&(1<<i) != 0 && l.taken(sharedBase+i) {
			return inUse(l.path, fmt.Sprintf("won't share the %q permission", name))
		}
		if unsharedPerms&(1<<i) != 0 && l.taken(permBase+i) {
			return inUse(l.path, fmt.Sprintf("holds the %q permission", name))
		}
	}
	return nil
}

// announce read-locks byte off.
func (l *ImageLock) announce(off int) error {
	err := l.fcntl(unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_RDLCK, Start: int64(off), Len: 1})
	if err == unix.EAGAIN || err == unix.EACCES {
		// Someone write-locked the byte: not qemu, but a conflict all the same.
		return inUse(l.path, fmt.Sprintf("write-locks qemu's lock byte %d", off))
	}
	if err != nil {
		return fmt.Errorf("lock disk %s: byte %d: %w", l.path, off, err)
	}
	return nil
}

func inUse(path, what string) error {
	return fmt.Errorf("%w: %s: another process %s (qemu image locks); "+
		"stop the VM or qemu process using it, or the other asr track", ErrInUse, path, what)
}

// taken reports whether another open file description locks byte off.
// A test that fails outright counts as taken: better to refuse than to
// admit a second writer.
func (l *ImageLock) taken(off int) bool {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: int64(off), Len: 1}
	err := l.fcntl(unix.F_OFD_GETLK, &lk)
	return err != nil || lk.Type != unix.F_UNLCK
}

func (l *ImageLock) fcntl(cmd int, lk *unix.Flock_t) error {
	for {
		// Whence 0 (SEEK_SET): Start is an absolute offset.
		if err := unix.FcntlFlock(uintptr(l.fd), cmd, lk); err != unix.EINTR {
			return err
		}
	}
}

// Close releases the locks by closing the descriptor. It is idempotent:
// calls after the first do nothing and return nil.
func (l *ImageLock) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return nil
	}
	err := unix.Close(l.fd)
	l.fd = -1
	return err
}
