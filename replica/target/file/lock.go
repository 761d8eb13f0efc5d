package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asr-project/asr/replica/target"
)

// diskState is what this process keeps about one disk. mu orders this
// process's goroutines (and tells the race detector so); the flock on the
// disk's lock file orders processes.
type diskState struct {
	mu    sync.RWMutex
	idxMu sync.Mutex           // guards the map; shared holders may load
	idx   map[string]*preIndex // snapshot directory name -> loaded index
}

// held is a disk lock: the in-process lock plus a flock on a file
// descriptor of its own, so two holders in one process conflict like two
// processes do.
type held struct {
	t    *Target
	enc  string
	st   *diskState
	f    *os.File
	excl bool
}

func (t *Target) state(enc string) *diskState {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.disks[enc]
	if st == nil {
		st = &diskState{idx: map[string]*preIndex{}}
		t.disks[enc] = st
	}
	return st
}

// lock takes the disk's lock, shared or exclusive. Without create, a disk
// with neither a lock file nor a disk file is ErrNotFound; with create the
// lock file is made (CreateDisk, the destination of a copy).
func (t *Target) lock(ctx context.Context, disk, enc string, excl, create bool) (*held, error) {
	st := t.state(enc)
	if excl {
		st.mu.Lock()
	} else {
		st.mu.RLock()
	}
	h := &held{t: t, enc: enc, st: st, excl: excl}
	if err := h.flock(ctx, disk, create); err != nil {
		h.unlockMem()
		return nil, err
	}
	return h, nil
}

func (h *held) flock(ctx context.Context, disk string, create bool) error {
	path := h.t.lockPath(h.enc)
	how := unix.LOCK_SH
	if h.excl {
		how = unix.LOCK_EX
	}
	for {
		flags := os.O_RDWR
		if create {
			flags |= os.O_CREATE
		} else if _, err := os.Stat(h.t.vhdPath(h.enc)); err == nil {
			flags |= os.O_CREATE // a disk restored without its lock file
		}
		f, err := os.OpenFile(path, flags, 0o644)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file target: disk %q: %w", disk, target.ErrNotFound)
		}
		if err != nil {
			return ioErr("open the lock file", path, err)
		}
		if err := waitFlock(ctx, f, how); err != nil {
			f.Close()
			return err
		}
		// DeleteDisk removes the lock file while holding it: a lock taken
		// on a removed file protects nothing, so take the new one.
		var a, b unix.Stat_t
		if unix.Fstat(int(f.Fd()), &a) == nil && unix.Stat(path, &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev {
			h.f = f
			return nil
		}
		f.Close()
	}
}

// waitFlock polls a non-blocking flock so that ctx can end the wait.
func waitFlock(ctx context.Context, f *os.File, how int) error {
	delay := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return ioErr("lock", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("file target: waiting for the lock %s (another asr process holds it): %w", f.Name(), ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func (h *held) unlock() {
	if h.f != nil {
		h.f.Close() // closing the only descriptor drops the flock
		h.f = nil
	}
	h.unlockMem()
}

func (h *held) unlockMem() {
	if h.excl {
		h.st.mu.Unlock()
	} else {
		h.st.mu.RUnlock()
	}
}
