package tracker

import "sync"

// rangeLock serializes writes whose byte ranges overlap and lets the others
// run at once. A write holds its range from the log append until the disk
// write completes, so for every pair of overlapping writes the log records
// them in the order the disk received them.
type rangeLock struct {
	mu   sync.Mutex
	cond sync.Cond
	held []span
}

type span struct{ off, end int64 }

func (r *rangeLock) lock(off, n int64) span {
	s := span{off, off + n}
	r.mu.Lock()
	if r.cond.L == nil {
		r.cond.L = &r.mu
	}
	for r.overlaps(s) {
		r.cond.Wait()
	}
	r.held = append(r.held, s)
	r.mu.Unlock()
	return s
}

func (r *rangeLock) overlaps(s span) bool {
	for _, h := range r.held {
		if h.off < s.end && s.off < h.end {
			return true
		}
	}
	return false
}

func (r *rangeLock) unlock(s span) {
	r.mu.Lock()
	for i, h := range r.held {
		if h == s {
			r.held[i] = r.held[len(r.held)-1]
			r.held = r.held[:len(r.held)-1]
			break
		}
	}
	r.mu.Unlock()
	r.cond.Broadcast()
}
