package tracker

import (
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// writebackEvery is how many written bytes start the kernel writing a
// disk's and its log's dirty pages out. Without it the page cache holds
// seconds of writes, a checkpoint's fsyncs send them to the device in one
// burst, and an activity-log update queued behind that burst stalls the
// guest (a 200 ms write every few seconds under 50 MB/s of random writes).
// Streaming them out as they come keeps each checkpoint, and the queue in
// front of the activity log, small. It costs no extra I/O: the kernel
// writes those pages within 30 s anyway.
const writebackEvery = 8 << 20

// writeback starts writeback in the background, so the guest's write
// never waits for it.
type writeback struct {
	pending atomic.Int64
	kick    chan struct{}
}

func (w *writeback) init(files func() []string) {
	w.kick = make(chan struct{}, 1)
	go func() {
		for range w.kick {
			for _, p := range files() {
				f, err := os.Open(p)
				if err != nil {
					continue
				}
				unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
				f.Close()
			}
		}
	}()
}

// wrote counts n written bytes and, every writebackEvery, kicks the
// goroutine.
func (w *writeback) wrote(n int64) {
	if w.pending.Add(n) < writebackEvery {
		return
	}
	w.pending.Store(0)
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *writeback) stop() {
	if w.kick != nil {
		close(w.kick)
	}
}
