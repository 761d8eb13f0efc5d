package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/asr-project/asr/chunker"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// Sink is the side a block sync makes equal to its source: a replica
// disk on the target (resync) or a disk file (failback).
type Sink interface {
	// ReadAt fills p from off; ranges never written read as zeros.
	ReadAt(ctx context.Context, p []byte, off int64) error
	// WritePages writes p at off: multiples of target.PageSize, at most
	// target.MaxWrite. Safe to repeat, and to call concurrently for
	// ranges that do not overlap.
	WritePages(ctx context.Context, off int64, p []byte) error
	// Sync makes every write so far durable; a checkpoint that counts
	// them follows it.
	Sync(ctx context.Context) error
}

// targetSink is a replica disk on a target: its writes are durable when
// they return.
type targetSink struct {
	t    target.Target
	disk string
}

func (s targetSink) ReadAt(ctx context.Context, p []byte, off int64) error {
	return s.t.ReadAt(ctx, s.disk, "", p, off)
}

func (s targetSink) WritePages(ctx context.Context, off int64, p []byte) error {
	return s.t.WritePages(ctx, s.disk, off, p)
}

func (targetSink) Sync(context.Context) error { return nil }

// comparer is the block sync engine: it compares a source with a sink
// in fixed blocks, batch by batch, and writes to the sink only the blocks
// that differ. Its checkpoint is a vault.ResyncDisk, saved by the caller,
// so a killed sync goes on where it stopped and sends no block twice.
type comparer struct {
	src      io.ReaderAt
	srcSize  int64 // bytes from here on read as zeros (a replica rounds up)
	srcName  string
	sink     Sink
	sinkDesc string
	rd       *vault.ResyncDisk
	// save records rd durably; progress reports done of total bytes.
	save     func() error
	progress func(done, total int64)
	// tab is the sink's checksum map when one is kept (a remote replica);
	// byMap compares with it instead of reading the sink.
	tab   *chunker.Table
	byMap bool
	sbuf  []byte
	rbuf  []byte
}

func newComparer(src io.ReaderAt, srcSize int64, srcName string, sink Sink, sinkDesc string, rd *vault.ResyncDisk) *comparer {
	return &comparer{src: src, srcSize: srcSize, srcName: srcName, sink: sink, sinkDesc: sinkDesc, rd: rd,
		save: func() error { return nil }, progress: func(int64, int64) {},
		sbuf: make([]byte, resyncBatch*blockSize), rbuf: make([]byte, resyncBatch*blockSize)}
}

// run compares blocks [rd.Next, size) that want selects, batch by batch,
// calling checkpoint after each (done on the last). every, when not 0,
// lets that many compared bytes pass between checkpoints.
func (c *comparer) run(ctx context.Context, size int64, want func(int) bool, every int64, checkpoint func(done bool) error) error {
	rd := c.rd
	rd.Compared = rd.ComparedAtNext
	if len(rd.Sending) > 0 {
		// An interrupted run may have sent these: read them back.
		if err := c.batch(ctx, rd.Sending, true); err != nil {
			return err
		}
		rd.Compared -= int64(len(rd.Sending)) * blockSize // compared again below
	}
	n := int((size + blockSize - 1) / blockSize)
	since := int64(0)
	next := int(rd.Next / blockSize)
	for next < n {
		var idx []int
		end := min(n, next+resyncBatch)
		for i := next; i < end; i++ {
			if want(i) {
				idx = append(idx, i)
			}
		}
		if err := c.batch(ctx, idx, !c.byMap); err != nil {
			return err
		}
		next = end
		since += int64(len(idx)) * blockSize
		if since < every && next < n {
			continue // the checkpoint moves with the map
		}
		since = 0
		rd.Next = int64(next) * blockSize
		if err := checkpoint(next == n); err != nil {
			return err
		}
		crashpoint("resync-batch")
	}
	if next >= n && !rd.Done {
		return checkpoint(true)
	}
	return nil
}

// batch compares the blocks idx (ascending) and sends those that differ.
// readBack compares by reading the sink; otherwise with the map.
func (c *comparer) batch(ctx context.Context, idx []int, readBack bool) error {
	if len(idx) == 0 {
		return ctx.Err()
	}
	runs := blockRuns(idx)
	errc := make(chan error, 1)
	go func() { errc <- c.readSource(runs) }()
	var rerr error
	if readBack {
		rerr = c.readSink(ctx, runs)
	}
	if err := <-errc; err != nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	crashpoint("resync-read")
	var diff []int
	for k, i := range idx {
		s := c.sbuf[k*blockSize : (k+1)*blockSize]
		same := false
		if readBack {
			same = bytes.Equal(s, c.rbuf[k*blockSize:(k+1)*blockSize])
		} else {
			same = c.tab.Same(i, s)
		}
		if !same {
			diff = append(diff, k)
		}
	}
	c.rd.Compared += int64(len(idx)) * blockSize
	if len(diff) > 0 {
		// Counted before they are sent: a run killed after sending them
		// finds them equal and does not count or send them again.
		c.rd.Sent += int64(len(diff)) * blockSize
		if c.byMap {
			for _, k := range diff {
				c.rd.Sending = append(c.rd.Sending, idx[k])
			}
			slices.Sort(c.rd.Sending)
			c.rd.Sending = slices.Compact(c.rd.Sending)
		}
		if err := c.save(); err != nil {
			return err
		}
		if err := c.send(ctx, idx, diff); err != nil {
			return err
		}
		crashpoint("resync-sent")
	}
	if c.tab != nil {
		for k, i := range idx {
			c.tab.Set(i, c.sbuf[k*blockSize:(k+1)*blockSize])
		}
	}
	c.progress(c.rd.Compared, c.rd.Total)
	return nil
}

// blockRuns groups ascending block indexes into runs [first, first+n).
func blockRuns(idx []int) [][2]int {
	var runs [][2]int
	for _, i := range idx {
		if k := len(runs) - 1; k >= 0 && runs[k][0]+runs[k][1] == i {
			runs[k][1]++
		} else {
			runs = append(runs, [2]int{i, 1})
		}
	}
	return runs
}

// readSource fills sbuf with the runs' blocks, in order; bytes past the
// source's end are zeros. The source may be written meanwhile: what a
// resync misses is in the logs after its base, and a failback's final
// pass runs with the recovered VM shut down.
func (c *comparer) readSource(runs [][2]int) error {
	pos := 0
	for _, r := range runs {
		off, n := int64(r[0])*blockSize, r[1]*blockSize
		p := c.sbuf[pos : pos+n]
		have := max(0, min(int64(n), c.srcSize-off))
		clear(p[have:])
		if have > 0 {
			if _, err := c.src.ReadAt(p[:have], off); err != nil {
				return fmt.Errorf("read %s at %d: %w", c.srcName, off, err)
			}
		}
		pos += n
	}
	return nil
}

// readSink fills rbuf with the runs' blocks as the sink holds them.
func (c *comparer) readSink(ctx context.Context, runs [][2]int) error {
	pos := 0
	for _, r := range runs {
		off, n := int64(r[0])*blockSize, int64(r[1])*blockSize
		for done := int64(0); done < n; {
			m := min(n-done, target.MaxWrite)
			p := c.rbuf[pos+int(done) : pos+int(done+m)]
			if c.rd.ZeroFrom > 0 && off+done >= c.rd.ZeroFrom {
				clear(p) // the grown region: never written
			} else {
				if err := c.sink.ReadAt(ctx, p, off+done); err != nil {
					return fmt.Errorf("read %s at %d: %w", c.sinkDesc, off+done, err)
				}
				c.rd.Read += m
			}
			done += m
		}
		pos += int(n)
	}
	return nil
}

// send writes the differing blocks (positions in the batch) to the sink,
// joining neighbours into writes of up to target.MaxWrite, on sendWorkers
// at once, so their syncs (or round trips) overlap.
func (c *comparer) send(ctx context.Context, idx, diff []int) error {
	var writes [][2]int // [first, last] positions in the batch
	for a := 0; a < len(diff); {
		b := a + 1
		for b < len(diff) && idx[diff[b]] == idx[diff[b-1]]+1 && diff[b] == diff[b-1]+1 && (b-a+1)*blockSize <= target.MaxWrite {
			b++
		}
		writes = append(writes, [2]int{diff[a], diff[b-1]})
		a = b
	}
	next := make(chan [2]int)
	errs := make(chan error, sendWorkers)
	for range sendWorkers {
		go func() {
			var first error
			for w := range next {
				off := int64(idx[w[0]]) * blockSize
				if err := c.sink.WritePages(ctx, off, c.sbuf[w[0]*blockSize:(w[1]+1)*blockSize]); err != nil && first == nil {
					first = fmt.Errorf("write %s at %d: %w", c.sinkDesc, off, err)
				}
			}
			errs <- first
		}()
	}
	for _, w := range writes {
		next <- w
	}
	close(next)
	var err error
	for range sendWorkers {
		err = errors.Join(err, <-errs)
	}
	return err
}

// Sync is one disk's block sync: what SyncBlocks makes equal, and how.
type Sync struct {
	Src      io.ReaderAt
	SrcName  string
	Size     int64 // bytes compared; the source reads as zeros past its end
	Sink     Sink
	SinkDesc string
	// Want selects the blocks to compare (nil: all).
	Want func(int) bool
	// Map, when not nil, is the sink's checksum map, kept up to date from
	// every block compared; ByMap compares with it instead of reading the
	// sink, so only the source is read. SaveMap stores it at each
	// checkpoint, before the checkpoint itself is saved.
	Map     *chunker.Table
	ByMap   bool
	SaveMap func(*chunker.Table) error
	// Save records rd durably; Progress hears done of total bytes.
	Save     func() error
	Progress func(done, total int64)
}

// SyncBlocks makes s.Sink equal s.Src over [0, s.Size) in the resync's
// blocks (64 KiB), from the checkpoint in rd: the blocks s.Want selects
// are compared and only those that differ are written. After each batch
// of up to 64 MiB the sink is synced and rd saved, so a killed sync goes
// on from rd where it stopped and counts no block twice (rd.Sent counts
// the bytes written; blocks a map-compared run may have sent when it was
// killed, rd.Sending, are read back). It is the resync's engine run for a
// failback: from the recovered disks back to the original ones.
func SyncBlocks(ctx context.Context, s Sync, rd *vault.ResyncDisk) error {
	c := newComparer(s.Src, s.Size, s.SrcName, s.Sink, s.SinkDesc, rd)
	c.save, c.tab, c.byMap = s.Save, s.Map, s.ByMap && s.Map != nil
	if s.Progress != nil {
		c.progress = s.Progress
	}
	want := s.Want
	if want == nil {
		want = func(int) bool { return true }
	}
	return c.run(ctx, s.Size, want, 0, func(done bool) error {
		if err := s.Sink.Sync(ctx); err != nil {
			return fmt.Errorf("sync %s: %w", s.SinkDesc, err)
		}
		if c.tab != nil && s.SaveMap != nil {
			if err := s.SaveMap(c.tab); err != nil {
				return err
			}
			rd.Sending = nil
		}
		rd.Done, rd.ComparedAtNext = done, rd.Compared
		return s.Save()
	})
}

// BlockSize is the block SyncBlocks compares.
const BlockSize = blockSize

// FileSink is a disk file (a VHD or raw image) as a sync's sink. Reads
// and writes past size are clipped: the last block may be partial.
func FileSink(d *vhd.Disk) Sink { return &fileSink{d: d} }

type fileSink struct {
	mu sync.Mutex // a dynamic VHD allocates blocks as it is written
	d  *vhd.Disk
}

func (s *fileSink) ReadAt(_ context.Context, p []byte, off int64) error {
	n := max(0, min(int64(len(p)), s.d.Size()-off))
	clear(p[n:])
	if n == 0 {
		return nil
	}
	_, err := s.d.ReadAt(p[:n], off)
	return err
}

func (s *fileSink) WritePages(_ context.Context, off int64, p []byte) error {
	n := max(0, min(int64(len(p)), s.d.Size()-off))
	if n == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.d.WriteAt(p[:n], off)
	return err
}

func (s *fileSink) Sync(context.Context) error { return s.d.Sync() }

// TargetReader reads a disk on a target (snapshot "": the disk itself)
// as an io.ReaderAt, for a sync whose source is there.
func TargetReader(ctx context.Context, t target.Target, disk string) io.ReaderAt {
	return targetReader{ctx, t, disk}
}

type targetReader struct {
	ctx  context.Context
	t    target.Target
	disk string
}

func (r targetReader) ReadAt(p []byte, off int64) (int, error) {
	for done := 0; done < len(p); {
		n := min(len(p)-done, target.MaxWrite)
		if err := r.t.ReadAt(r.ctx, r.disk, "", p[done:done+n], off+int64(done)); err != nil {
			return done, err
		}
		done += n
	}
	return len(p), nil
}
