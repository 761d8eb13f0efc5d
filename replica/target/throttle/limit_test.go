package throttle

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/file"
	"github.com/asr-project/asr/replica/target/targettest"
)

func TestConformance(t *testing.T) {
	// A limit high enough not to slow the suite, low enough that the
	// suite's 4 MiB reads go through the bucket in chunks.
	targettest.Run(t, func(t *testing.T) target.Target {
		tg, err := file.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return Limit(tg, func(time.Time) int64 { return 1 << 30 })
	})
}

// fakeClock advances only when the limiter sleeps, and records the sleeps.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	cancel bool // Sleep fails as if ctx ended
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel {
		return context.Canceled
	}
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) took() (n int, total time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.sleeps {
		total += d
	}
	n = len(c.sleeps)
	c.sleeps = nil
	return n, total
}

// counting is a target that only counts the bytes that reach it.
type counting struct {
	target.Target
	written, read int64
}

func (c *counting) WritePages(_ context.Context, _ string, _ int64, p []byte) error {
	c.written += int64(len(p))
	return nil
}

func (c *counting) ReadAt(_ context.Context, _, _ string, p []byte, _ int64) error {
	c.read += int64(len(p))
	return nil
}

const mib = 1 << 20

func near(a, b time.Duration) bool { return a-b < time.Millisecond && b-a < time.Millisecond }

func TestLimitWaits(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC)}
	inner := &counting{}
	l := limit(inner, func(time.Time) int64 { return mib }, clk)

	// The bucket starts full with one second (1 MiB); a 4 MiB write waits
	// for the other three, in three 1 MiB chunks.
	if err := l.WritePages(ctx, "d", 0, make([]byte, 4*mib)); err != nil {
		t.Fatal(err)
	}
	if n, total := clk.took(); n != 3 || !near(total, 3*time.Second) {
		t.Fatalf("4 MiB at 1 MiB/s: %d sleeps of %v in all, want 3 and 3s", n, total)
	}
	// Reads have their own bucket, full.
	if err := l.ReadAt(ctx, "d", "", make([]byte, mib), 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := clk.took(); n != 0 {
		t.Fatalf("first 1 MiB read slept %d times, want 0", n)
	}
	// After half a second idle, 512 KiB is free and 1 MiB waits 0.5s.
	clk.advance(500 * time.Millisecond)
	if err := l.WritePages(ctx, "d", 0, make([]byte, mib)); err != nil {
		t.Fatal(err)
	}
	if _, total := clk.took(); !near(total, 500*time.Millisecond) {
		t.Fatalf("1 MiB after 0.5s idle waited %v, want 0.5s", total)
	}
	if inner.written != 5*mib || inner.read != mib {
		t.Fatalf("inner target saw %d written, %d read; want %d, %d", inner.written, inner.read, 5*mib, mib)
	}
}

func TestLimitFollowsRate(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: start}
	// 1 MiB/s for the first 10 s, then unlimited, then 2 MiB/s from 20 s.
	r := func(now time.Time) int64 {
		switch s := now.Sub(start); {
		case s < 10*time.Second:
			return mib
		case s < 20*time.Second:
			return 0
		}
		return 2 * mib
	}
	l := limit(&counting{}, r, clk)
	write := func(n int) {
		t.Helper()
		if err := l.WritePages(ctx, "d", 0, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	write(4 * mib) // 3 s of waiting, the clock is at 3 s
	clk.took()
	clk.advance(7 * time.Second) // 10 s: unlimited
	write(4 * mib)
	write(4 * mib)
	if n, _ := clk.took(); n != 0 {
		t.Fatalf("unlimited writes slept %d times", n)
	}
	clk.advance(10 * time.Second) // 20 s: 2 MiB/s, a fresh full bucket of 2 MiB
	write(4 * mib)
	if n, total := clk.took(); n != 1 || !near(total, time.Second) {
		t.Fatalf("4 MiB at 2 MiB/s from a full bucket: %d sleeps, %v; want 1, 1s", n, total)
	}
}

// A schedule change in the middle of a long call applies to its next chunk.
func TestLimitRateChangesMidCall(t *testing.T) {
	start := time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: start}
	r := func(now time.Time) int64 {
		if now.Sub(start) < 1500*time.Millisecond {
			return mib
		}
		return 0
	}
	l := limit(&counting{}, r, clk)
	if err := l.WritePages(context.Background(), "d", 0, make([]byte, 4*mib)); err != nil {
		t.Fatal(err)
	}
	// chunk 1 free, chunk 2 waits 1s (t=1s), chunk 3 waits 1s (t=2s), then
	// the rate is 0 and chunk 4 goes at once.
	if n, total := clk.took(); n != 2 || !near(total, 2*time.Second) {
		t.Fatalf("%d sleeps, %v; want 2, 2s", n, total)
	}
}

func TestLimitCancel(t *testing.T) {
	clk := &fakeClock{now: time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC), cancel: true}
	inner := &counting{}
	l := limit(inner, func(time.Time) int64 { return mib }, clk)
	err := l.WritePages(context.Background(), "d", 0, make([]byte, 4*mib))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v, want context.Canceled", err)
	}
	if inner.written != 0 {
		t.Fatalf("a cancelled write reached the target (%d bytes)", inner.written)
	}
}

// batches is a target that records each WriteBatch it gets and when.
type batches struct {
	target.Target
	clk   *fakeClock
	parts []batchPart
}

type batchPart struct {
	at time.Time
	ws []target.Write
}

func (b *batches) DiskSize(context.Context, string) (int64, error) { return 1 << 40, nil }

func (b *batches) WriteBatch(_ context.Context, _ string, ws []target.Write) error {
	b.parts = append(b.parts, batchPart{at: b.clk.Now(), ws: slices.Clone(ws)})
	return nil
}

// TestLimitWriteBatch: a batch is metered like the same bytes of
// WritePages, and reaches the target whole, in order, in parts of at most
// MaxWrite bytes, each only once its bytes were paid for.
func TestLimitWriteBatch(t *testing.T) {
	start := time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: start}
	inner := &batches{clk: clk}
	l := limit(inner, func(time.Time) int64 { return mib }, clk)

	var ws []target.Write
	var n int64
	add := func(size int) {
		ws = append(ws, target.Write{Off: n, P: make([]byte, size)})
		n += int64(size)
	}
	add(target.MaxWrite)
	for range 8 {
		add(target.PageSize)
	}
	add(mib)
	add(3 * mib)
	add(target.PageSize)
	add(2 * mib)
	if err := l.WriteBatch(context.Background(), "d", ws); err != nil {
		t.Fatal(err)
	}

	// The bucket starts full with one second (1 MiB); the rest waits.
	want := time.Duration(float64(n-mib) / mib * float64(time.Second))
	if _, total := clk.took(); !near(total, want) {
		t.Fatalf("a batch of %d bytes at 1 MiB/s waited %v, want %v", n, total, want)
	}
	var got []target.Write
	var paid int64
	for i, p := range inner.parts {
		var size int64
		for _, w := range p.ws {
			size += int64(len(w.P))
		}
		if size == 0 || size > target.MaxWrite {
			t.Errorf("part %d has %d bytes, want 1 to %d", i, size, target.MaxWrite)
		}
		paid += size
		// By then the clock must have run long enough to pay for it.
		if free := mib + int64(p.at.Sub(start).Seconds()*mib) + 1024; paid > free {
			t.Errorf("part %d reached the target at %v with %d bytes sent, more than the %d paid for", i, p.at.Sub(start), paid, free)
		}
		got = append(got, p.ws...)
	}
	if len(got) != len(ws) {
		t.Fatalf("the target got %d writes in %d parts, want %d", len(got), len(inner.parts), len(ws))
	}
	for i := range ws {
		if got[i].Off != ws[i].Off || len(got[i].P) != len(ws[i].P) || &got[i].P[0] != &ws[i].P[0] {
			t.Fatalf("write %d reached the target as %d bytes at %d, want %d at %d", i, len(got[i].P), got[i].Off, len(ws[i].P), ws[i].Off)
		}
	}
}

// local is a target that only answers Local.
type local struct {
	target.Target
	is bool
}

func (l local) Local() bool { return l.is }

// TestLocalForwards: a limit does not change what a read costs.
func TestLocalForwards(t *testing.T) {
	for _, is := range []bool{true, false} {
		if got := Limit(local{is: is}, func(time.Time) int64 { return mib }).Local(); got != is {
			t.Errorf("Local through Limit = %v, inner says %v", got, is)
		}
	}
}
