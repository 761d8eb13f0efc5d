package replica

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// rotatePoll is how often a rotator looks at the clock.
var rotatePoll = 100 * time.Millisecond

// rotator seals an item's logs every copy frequency while its cycle
// applies, so a cycle that outlasts the frequency does not push the next
// point back: a point's time is its rotation's. The points it rotates wait
// in memory, in order, until the cycle before them is recorded. A crash
// loses their times, never their writes: the sealed logs stay, and the next
// run's point covers them.
type rotator struct {
	e    *Engine
	it   vault.Item // a copy: the cycle owns the real item
	next time.Time  // when the next rotation is due
	freq time.Duration

	mu     sync.Mutex
	queued []*vault.Pending
	stopc  chan struct{}
	done   chan struct{}
}

// startRotator starts rotating one frequency after the newest rotation,
// last (the zero time: the cycle is about to rotate now). A frequency of 0
// rotates nothing.
func (e *Engine) startRotator(ctx context.Context, it vault.Item, freq time.Duration, last time.Time) *rotator {
	if last.IsZero() {
		last = e.now()
	}
	it.Disks = slices.Clone(it.Disks)
	r := &rotator{e: e, it: it, next: last.Add(freq), freq: freq, stopc: make(chan struct{}), done: make(chan struct{})}
	go r.run(ctx)
	return r
}

func (r *rotator) run(ctx context.Context) {
	defer close(r.done)
	if r.freq <= 0 {
		return
	}
	tick := time.NewTicker(rotatePoll)
	defer tick.Stop()
	for {
		select {
		case <-r.stopc:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if r.e.now().Before(r.next) {
			continue
		}
		p, err := r.e.rotate(ctx, &r.it)
		if err != nil {
			// The cycle goes on; the next run's rotation covers these logs
			// and meets the same error if it lasts.
			r.e.warn(r.it.VM, "rotation during a long cycle failed: %v", err)
			return
		}
		if p.AppConsistent {
			r.it.LastAppAt = p.Time
		}
		r.e.event(r.it.VM, "logs rotated for point %s while the previous cycle applied", p.Point)
		r.mu.Lock()
		r.queued = append(r.queued, p)
		r.mu.Unlock()
		r.next = p.Time.Add(r.freq)
	}
}

// stop ends the rotations and returns the points rotated meanwhile,
// oldest first.
func (r *rotator) stop() []*vault.Pending {
	close(r.stopc)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queued
}

// cycles runs the item's cycle, then one for each point a rotator sealed
// while it ran, until none is left.
// A failover's final cycle (the VM is shut down) rotates only once.
func (e *Engine) cycles(ctx context.Context, t target.Target, it *vault.Item, j *job) error {
	var pol vault.Policy
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { pol, err = tx.Policy(it.Policy); return }); err != nil {
		return err
	}
	if vault.FailedOver(it.State) {
		pol.Frequency = 0
	}
	var queue []*vault.Pending
	for {
		last := time.Time{}
		if n := len(queue); n > 0 {
			last = queue[n-1].Time
		} else if it.Pending != nil {
			last = it.Pending.Time
		}
		rot := e.startRotator(ctx, *it, pol.Frequency, last)
		err := e.cycle(ctx, t, it, j)
		queue = append(queue, rot.stop()...)
		if err != nil || len(queue) == 0 {
			return err
		}
		it.Pending, queue = queue[0], queue[1:]
		j.pointBase = j.j.Bytes
		if err := e.saveItem(it); err != nil {
			return err
		}
	}
}
