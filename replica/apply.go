package replica

import (
	"context"
	"fmt"
	"os"

	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// batchBytes is how much of a cycle goes to the target in one WriteBatch:
// enough that a file target syncs a few dozen times per GiB rather than
// once per write, little enough that the two batches in memory (one being
// filled from the logs while the other is written) cost 64 MiB.
const batchBytes = 32 << 20

// span is one page-aligned write [a, b) of at most target.MaxWrite bytes
// and the coalesced extents (clipped to it) that fill it.
type span struct {
	a, b int64
	exts []hrl.Extent
}

// spans packs sorted, non-overlapping extents into page-aligned writes.
// Extents that share a page go into one span, so no two spans touch the
// same page and they may be written in any order.
func spans(exts []hrl.Extent) []span {
	var out []span
	for _, e := range exts {
		for e.Len > 0 {
			a := e.Off / target.PageSize * target.PageSize
			b := (e.Off + e.Len + target.PageSize - 1) / target.PageSize * target.PageSize
			n := len(out)
			if n > 0 && a <= out[n-1].b {
				cur := &out[n-1]
				if b-cur.a <= target.MaxWrite {
					cur.exts = append(cur.exts, e)
					cur.b = max(cur.b, b)
					break
				}
				if a < cur.b { // shares a page: the head joins cur, the rest starts fresh at cur.b
					head := cur.b - e.Off
					h := e
					h.Len = head
					cur.exts = append(cur.exts, h)
					e.Off, e.FileOff, e.Len = e.Off+head, e.FileOff+head, e.Len-head
					continue
				}
			}
			if b-a > target.MaxWrite { // split long extents at MaxWrite boundaries
				cut := a + target.MaxWrite - e.Off
				h := e
				h.Len = cut
				out = append(out, span{a: a, b: a + target.MaxWrite, exts: []hrl.Extent{h}})
				e.Off, e.FileOff, e.Len = e.Off+cut, e.FileOff+cut, e.Len-cut
				continue
			}
			out = append(out, span{a: a, b: b, exts: []hrl.Extent{e}})
			break
		}
	}
	return out
}

// applyDisk applies the logs a pending point covers to disk i's replica
// and returns the bytes written and the UUID of the last log applied (the
// one the next log must chain from). Logs that can't be trusted send the
// item to resync instead. A checksum map kept at the target is brought up
// to date with the blocks written.
func (e *Engine) applyDisk(ctx context.Context, t target.Target, it *vault.Item, i int, j *job) (int64, string, error) {
	d := it.Disks[i]
	logs, err := pendingLogs(&d, it.Pending.UpTo[d.Name])
	if err != nil {
		if untrusted(err) {
			return 0, "", e.markResync(it, err)
		}
		return 0, "", err
	}
	last := d.AppliedID
	if len(logs) > 0 {
		last = logs[len(logs)-1].ID.String()
	}
	files := make([]*os.File, len(logs))
	for i, l := range logs {
		if files[i], err = os.Open(l.Path); err != nil {
			return 0, "", err
		}
		defer files[i].Close()
	}
	exts := hrl.Coalesce(logs)
	work := spans(exts)
	var total int64
	for _, s := range work {
		total += s.b - s.a
	}
	written, err := writeBatches(ctx, t, d.Replica, files, work, func(n int64) {
		j.progress(n, total)
		crashpoint("applying")
	})
	if err == nil && d.MapDigest != "" && !t.Local() {
		err = e.updateMap(ctx, t, it, i, files, exts)
	}
	return written, last, err
}

// batch is spans filled into one buffer, ready for WriteBatch.
type batch struct {
	buf []byte
	ws  []target.Write
}

// writeBatches fills batches of spans from the logs and writes them, the
// next batch filling while the last one is written. done gets the bytes
// written so far after each batch.
func writeBatches(ctx context.Context, t target.Target, disk string, files []*os.File, work []span, done func(int64)) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan *batch, 2)
	for range 2 {
		free <- &batch{buf: make([]byte, batchBytes)}
	}
	full := make(chan *batch)
	var fillErr error
	go func() {
		defer close(full)
		fillErr = fillBatches(ctx, t, disk, files, work, free, full)
	}()
	var written int64
	var err error
	for b := range full {
		if err == nil {
			if err = t.WriteBatch(ctx, disk, b.ws); err != nil {
				err = fmt.Errorf("write replica %s: %w", disk, err)
				cancel()
			} else {
				for _, w := range b.ws {
					written += int64(len(w.P))
				}
				done(written)
			}
		}
		free <- b
	}
	if err == nil {
		err = fillErr
	}
	if err == nil {
		err = ctx.Err()
	}
	return written, err
}

// fillBatches packs the spans into batches taken from free and hands each
// on to full.
func fillBatches(ctx context.Context, t target.Target, disk string, files []*os.File, work []span, free <-chan *batch, full chan<- *batch) error {
	var b *batch
	used := 0
	send := func() bool {
		if b == nil || len(b.ws) == 0 {
			return true
		}
		select {
		case full <- b:
			b = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, s := range work {
		n := int(s.b - s.a)
		if b != nil && used+n > len(b.buf) && !send() {
			return ctx.Err()
		}
		if b == nil {
			select {
			case b = <-free:
				b.ws, used = b.ws[:0], 0
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		p := b.buf[used : used+n]
		if err := fillSpan(ctx, t, disk, files, s, p); err != nil {
			return err
		}
		b.ws = append(b.ws, target.Write{Off: s.a, P: p})
		used += n
	}
	if !send() {
		return ctx.Err()
	}
	return nil
}

// fillSpan fills buf with the span's extents, reading first from the
// replica the pages they only partly cover.
func fillSpan(ctx context.Context, t target.Target, disk string, files []*os.File, s span, buf []byte) error {
	covered := s.a
	for _, e := range s.exts {
		if e.Off > covered {
			if err := readEdge(ctx, t, disk, s, buf, covered, e.Off); err != nil {
				return err
			}
		}
		if _, err := files[e.Log].ReadAt(buf[e.Off-s.a:e.Off-s.a+e.Len], e.FileOff); err != nil {
			return fmt.Errorf("read log %s at %d: %w", files[e.Log].Name(), e.FileOff, err)
		}
		covered = e.Off + e.Len
	}
	if covered < s.b {
		return readEdge(ctx, t, disk, s, buf, covered, s.b)
	}
	return nil
}

// readEdge fills the uncovered bytes [from, to) of a span from the
// replica, reading whole pages.
func readEdge(ctx context.Context, t target.Target, disk string, s span, buf []byte, from, to int64) error {
	a := from / target.PageSize * target.PageSize
	b := (to + target.PageSize - 1) / target.PageSize * target.PageSize
	page := make([]byte, b-a)
	if err := t.ReadAt(ctx, disk, "", page, a); err != nil {
		return fmt.Errorf("read replica %s at %d: %w", disk, a, err)
	}
	copy(buf[from-s.a:to-s.a], page[from-a:to-a])
	return nil
}
