package nbd

import (
	"bytes"
	"os"
	"sync"
	"syscall"
)

// memBackend keeps what reads see and, separately, what the last Flush made
// durable, so tests can tell acknowledged from durable.
type memBackend struct {
	mu      sync.Mutex
	data    []byte
	durable []byte
	flushes int
	trims   int
	zeroes  int
	desc    string

	// Hooks run before the operation, outside the lock; they may block.
	beforeRead  func(off int64)
	beforeWrite func(off int64)
	// Errors returned instead of doing the operation.
	readErr, writeErr, flushErr error
	shortRead                   bool
}

var (
	_ Backend   = (*memBackend)(nil)
	_ Describer = (*memBackend)(nil)
	_ Backend   = (*fileBackend)(nil)
)

func newMem(size int, fill byte) *memBackend {
	m := &memBackend{data: bytes.Repeat([]byte{fill}, size)}
	m.durable = bytes.Clone(m.data)
	return m
}

func (m *memBackend) Size() int64         { return int64(len(m.data)) }
func (m *memBackend) Description() string { return m.desc }

func (m *memBackend) ReadAt(p []byte, off int64) (int, error) {
	if m.beforeRead != nil {
		m.beforeRead(off)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.readErr != nil {
		return 0, m.readErr
	}
	if m.shortRead {
		return copy(p[:len(p)/2], m.data[off:]), nil
	}
	return copy(p, m.data[off:]), nil
}

func (m *memBackend) WriteAt(p []byte, off int64) (int, error) {
	if m.beforeWrite != nil {
		m.beforeWrite(off)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.writeErr != nil {
		return 0, m.writeErr
	}
	return copy(m.data[off:], p), nil
}

func (m *memBackend) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.flushErr != nil {
		return m.flushErr
	}
	m.flushes++
	copy(m.durable, m.data)
	return nil
}

func (m *memBackend) Trim(off, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.trims++
	return nil
}

func (m *memBackend) WriteZeroes(off, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.zeroes++
	clear(m.data[off : off+n])
	return nil
}

// snapshot returns copies of the visible and durable bytes and the counters.
func (m *memBackend) snapshot() (data, durable []byte, flushes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.data), bytes.Clone(m.durable), m.flushes
}

// fileBackend serves a plain file, the way a raw disk would be served.
type fileBackend struct {
	f    *os.File
	size int64
}

func openFileBackend(path string) (*fileBackend, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileBackend{f: f, size: st.Size()}, nil
}

func (b *fileBackend) Size() int64                              { return b.size }
func (b *fileBackend) ReadAt(p []byte, off int64) (int, error)  { return b.f.ReadAt(p, off) }
func (b *fileBackend) WriteAt(p []byte, off int64) (int, error) { return b.f.WriteAt(p, off) }
func (b *fileBackend) Flush() error                             { return b.f.Sync() }
func (b *fileBackend) Trim(off, n int64) error                  { return nil }
func (b *fileBackend) Close() error                             { return b.f.Close() }

// WriteZeroes punches a hole (FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE) and
// falls back to writing zeroes where the file system cannot.
func (b *fileBackend) WriteZeroes(off, n int64) error {
	if err := syscall.Fallocate(int(b.f.Fd()), 0x02|0x01, off, n); err == nil {
		return nil
	}
	zero := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := b.f.WriteAt(zero[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// nullBackend drops writes and reads zeroes: the protocol path's ceiling.
type nullBackend struct{ size int64 }

func (n nullBackend) Size() int64                              { return n.size }
func (n nullBackend) ReadAt(p []byte, off int64) (int, error)  { clear(p); return len(p), nil }
func (n nullBackend) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }
func (n nullBackend) Flush() error                             { return nil }
func (n nullBackend) Trim(off, l int64) error                  { return nil }
func (n nullBackend) WriteZeroes(off, l int64) error           { return nil }
