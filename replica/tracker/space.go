package tracker

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// space bounds what a disk's logs may take: the logs waiting to ship may
// hold at most half the disk's size, and the file system holding them must
// keep minFree bytes free. Both are estimated per write and checked
// against the file system when the estimate crosses a bound.
type space struct {
	disk    string
	max     int64
	minFree int64
	waiting atomic.Int64 // bytes in the disk's log files
	free    atomic.Int64 // free bytes on their file system
	last    atomic.Int64 // unix nanoseconds of the last refresh
	mu      sync.Mutex
}

func (s *space) init(disk string, size int64, opt Options) {
	s.disk, s.max, s.minFree = disk, size/2, opt.MinFree
	if opt.MaxLogBytes > 0 {
		s.max = opt.MaxLogBytes
	}
}

// take accounts for n more logged bytes and returns why logging must stop,
// or "".
func (s *space) take(n int64) string {
	over := s.waiting.Add(n) > s.max
	low := s.free.Add(-2*n) < s.minFree // log and a sparse disk both grow
	if !over && !low {
		return ""
	}
	s.refresh() // measures the files as they are, without this write
	if w := s.waiting.Add(n); w > s.max {
		return fmt.Sprintf("its logs waiting to ship reached %d bytes, over the %d-byte bound (half the disk); replication is too far behind", w, s.max)
	}
	if f := s.free.Add(-2 * n); f < s.minFree {
		return fmt.Sprintf("the file system holding its logs (%s) has %d bytes free, under the %d-byte reserve", filepath.Dir(s.disk), f+2*n, s.minFree)
	}
	return ""
}

// refresh measures the logs and the free space again.
func (s *space) refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting.Store(LogBytes(s.disk))
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(s.disk), &st); err == nil {
		s.free.Store(int64(st.Bavail) * st.Bsize)
	} else {
		s.free.Store(1 << 62) // unknown: the write itself will tell
	}
	s.last.Store(time.Now().UnixNano())
}

// refreshSometimes refreshes at most once a second, so the logs the
// replicate cycle deletes stop counting.
func (s *space) refreshSometimes() {
	if time.Now().UnixNano()-s.last.Load() > int64(time.Second) {
		s.refresh()
	}
}
