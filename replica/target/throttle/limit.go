package throttle

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/asr-project/asr/replica/target"
)

// Limit returns t with WritePages, WriteBatch and ReadAt limited to rate(now) bytes per
// second each; rate(now) <= 0 means unlimited.
func Limit(t target.Target, rate func(now time.Time) int64) target.Target {
	return limit(t, rate, realClock{})
}

// clock is time as the limiter sees it; tests replace it.
type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func limit(t target.Target, rate func(time.Time) int64, clk clock) *limited {
	return &limited{Target: t, write: &bucket{rate: rate, clk: clk}, read: &bucket{rate: rate, clk: clk}}
}

type limited struct {
	target.Target
	write, read *bucket
}

func (l *limited) WritePages(ctx context.Context, disk string, off int64, p []byte) error {
	if err := l.write.wait(ctx, int64(len(p))); err != nil {
		return fmt.Errorf("throttle: waiting to write %d bytes to disk %q: %w", len(p), disk, err)
	}
	return l.Target.WritePages(ctx, disk, off, p)
}

// WriteBatch passes the batch on in parts of at most MaxWrite bytes (a
// second of traffic at most), each after its tokens are taken, so a large
// batch does not leave as one burst.
// The batch is checked whole first, so a bad write fails it before any
// part is written.
func (l *limited) WriteBatch(ctx context.Context, disk string, ws []target.Write) error {
	size, err := l.Target.DiskSize(ctx, disk)
	if err != nil {
		return err
	}
	if err := target.CheckBatch(ws, size); err != nil {
		return fmt.Errorf("throttle: disk %q: %w", disk, err)
	}
	for len(ws) > 0 {
		n, k := int64(len(ws[0].P)), 1
		for k < len(ws) && n+int64(len(ws[k].P)) <= target.MaxWrite {
			n += int64(len(ws[k].P))
			k++
		}
		if err := l.write.wait(ctx, n); err != nil {
			return fmt.Errorf("throttle: waiting to write %d bytes to disk %q: %w", n, disk, err)
		}
		if err := l.Target.WriteBatch(ctx, disk, ws[:k]); err != nil {
			return err
		}
		ws = ws[k:]
	}
	return nil
}

func (l *limited) ReadAt(ctx context.Context, disk, snapshot string, p []byte, off int64) error {
	if err := l.read.wait(ctx, int64(len(p))); err != nil {
		return fmt.Errorf("throttle: waiting to read %d bytes of disk %q: %w", len(p), disk, err)
	}
	return l.Target.ReadAt(ctx, disk, snapshot, p, off)
}

// Local is the inner target's answer: a limit changes how fast a read
// goes, not what it costs. ResizeDisk, like the other metadata calls, passes
// through unmetered.
func (l *limited) Local() bool { return l.Target.Local() }

// bucket is one direction's token bucket, re-rated when rate changes.
type bucket struct {
	rate func(time.Time) int64
	clk  clock

	mu  sync.Mutex
	lim *rate.Limiter // nil while unlimited
	cur int64         // the rate lim was set to
}

// burst is one second of traffic, between one byte and MaxWrite.
func burst(r int64) int { return int(min(max(r, 1), target.MaxWrite)) }

// wait takes n tokens, in chunks no larger than the bucket, asking the
// rate again before each chunk.
func (b *bucket) wait(ctx context.Context, n int64) error {
	for n > 0 {
		now := b.clk.Now()
		res, chunk := b.reserve(now, n)
		if res == nil {
			return nil // unlimited now
		}
		if d := res.DelayFrom(now); d > 0 {
			if err := b.clk.Sleep(ctx, d); err != nil {
				res.CancelAt(b.clk.Now())
				return err
			}
		}
		n -= chunk
	}
	return nil
}

func (b *bucket) reserve(now time.Time, n int64) (*rate.Reservation, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rate(now)
	switch {
	case r <= 0:
		b.lim, b.cur = nil, 0
		return nil, 0
	case b.lim == nil:
		b.lim = rate.NewLimiter(rate.Limit(r), burst(r)) // starts full
	case r != b.cur:
		b.lim.SetLimitAt(now, rate.Limit(r))
		b.lim.SetBurstAt(now, burst(r))
	}
	b.cur = r
	chunk := min(n, int64(b.lim.Burst()))
	return b.lim.ReserveN(now, int(chunk)), chunk
}
