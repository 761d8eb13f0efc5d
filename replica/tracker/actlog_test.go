package tracker

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Once the log is three quarters full of extents a checkpoint has not
// cleaned, one runs in the background, so the writes that follow evict
// clean extents instead of each waiting for a checkpoint of their own.
func TestActivityLogCleansAhead(t *testing.T) {
	var al *activityLog
	var ran atomic.Int32
	checkpoint := func() error {
		e := al.startCheckpoint()
		ran.Add(1)
		al.finishCheckpoint(e)
		return nil
	}
	al, err := openAL(filepath.Join(t.TempDir(), "d"), 64<<20, 1<<20, 8, checkpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func(ext int64) {
		t.Helper()
		a, b, err := al.begin(ext<<20, 4096)
		if err != nil {
			t.Fatal(err)
		}
		al.end(a, b)
	}
	for e := int64(0); e < 14; e += 2 { // 7 of 8, none adjacent (no prefetch)
		write(e)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		al.mu.Lock()
		done := al.clean > 0 && !al.cleaning
		al.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint started ahead with the log 7/8 full")
		}
	}
	for e := int64(20); e < 36; e += 2 {
		write(e)
	}
	if _, forced := al.stats(); forced != 0 || ran.Load() == 0 {
		t.Fatalf("%d checkpoints forced on writes (%d run in all), want none forced", forced, ran.Load())
	}
}
