package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/asr-project/asr/chunker"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

const (
	// resyncBatch blocks (64 MiB) are read, compared and sent between
	// checkpoints.
	resyncBatch = 1024
	// mapEvery: comparing against a checksum map, the map is stored and
	// the checkpoint moved on after this many bytes compared. Blocks sent
	// since are listed in the checkpoint (ResyncDisk.Sending).
	mapEvery = 1 << 30
	// sendWorkers writes of differing blocks run at once.
	sendWorkers = 4
)

// blockSize is the resync's block: the chunker's default, which is also
// the granule of the tracker's dirty map and resync set.
const blockSize = chunker.DefaultBlockSize

// comparer holds one disk's resync while it runs.
type comparer struct {
	e     *Engine
	t     target.Target
	it    *vault.Item
	d     *vault.Disk
	rd    *vault.ResyncDisk
	j     *job
	src   *vhd.Disk
	tab   *chunker.Table // the replica's checksum map being kept; nil: none
	byMap bool           // compare with tab instead of reading the replica
	sbuf  []byte
	rbuf  []byte
}

// compareDisk compares disk k of the resync from its checkpoint to the
// end and sends the blocks that differ.
func (e *Engine) compareDisk(ctx context.Context, t target.Target, it *vault.Item, k int, j *job) error {
	rd := &it.Resync.Disks[k]
	d := &it.Disks[slices.IndexFunc(it.Disks, func(d vault.Disk) bool { return d.Name == rd.Name })]
	src, err := vhd.OpenAs(d.Path, diskFormat(*d))
	if err != nil {
		return fmt.Errorf("disk %s: %w", d.Path, err)
	}
	defer src.Close()
	c := &comparer{e: e, t: t, it: it, d: d, rd: rd, j: j, src: src,
		sbuf: make([]byte, resyncBatch*blockSize), rbuf: make([]byte, resyncBatch*blockSize)}
	if err := c.openMap(ctx); err != nil {
		return err
	}
	want, err := c.wanted()
	if err != nil {
		return err
	}
	rd.Compared = rd.ComparedAtNext
	if len(rd.Sending) > 0 {
		// An interrupted run may have sent these: read them back.
		if err := c.batch(ctx, rd.Sending, true); err != nil {
			return err
		}
		rd.Compared -= int64(len(rd.Sending)) * blockSize // compared again below
	}
	n := int((d.ReplicaSize + blockSize - 1) / blockSize)
	sinceMap := int64(0)
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
		sinceMap += int64(len(idx)) * blockSize
		if c.byMap && sinceMap < mapEvery && next < n {
			continue // the checkpoint moves with the map
		}
		sinceMap = 0
		rd.Next = int64(next) * blockSize
		if err := c.checkpoint(ctx, next == n); err != nil {
			return err
		}
		crashpoint("resync-batch")
	}
	if next >= n && !rd.Done {
		return c.checkpoint(ctx, true)
	}
	return nil
}

// openMap decides how the replica side is known: read back (a local
// target, or no usable map) or from its checksum map; and whether a new
// map is built, which needs a full compare from the start.
func (c *comparer) openMap(ctx context.Context) error {
	if c.t.Local() {
		return nil
	}
	if !c.rd.ReadReplica {
		tab, read, err := c.e.loadMap(ctx, c.t, c.it.VM, *c.d)
		c.rd.Read += read
		if err == nil {
			c.tab, c.byMap = tab, true
			return nil
		}
		c.rd.ReadReplica, c.rd.Why = true, joinWhy(c.rd.Why, err.Error()+": reading the replica back")
		c.d.MapDigest = ""
	}
	if c.rd.Full && c.rd.Next == 0 {
		tab, err := chunker.NewTable(c.d.ReplicaSize, blockSize)
		if err != nil {
			return err
		}
		c.tab = tab
	}
	return nil
}

// wanted says which blocks the resync compares: all, or the resync set's.
func (c *comparer) wanted() (func(int) bool, error) {
	if c.rd.Full {
		return func(int) bool { return true }, nil
	}
	set, err := tracker.ReadResyncSet(c.d.Path)
	if err != nil {
		return nil, fmt.Errorf("disk %s: the resync set is gone (%v); run `asr resync %s` again after `asr state check`: %w", c.d.Name, err, c.it.VM, ErrResync)
	}
	if set.Granule != blockSize {
		return func(int) bool { return true }, nil
	}
	return func(i int) bool {
		return i/64 < len(set.Bits) && set.Bits[i/64]&(1<<(uint(i)%64)) != 0
	}, nil
}

// batch compares the blocks idx (ascending) and sends those that differ.
// readBack compares by reading the replica; otherwise with the map.
func (c *comparer) batch(ctx context.Context, idx []int, readBack bool) error {
	if len(idx) == 0 {
		return ctx.Err()
	}
	runs := blockRuns(idx)
	errc := make(chan error, 1)
	go func() { errc <- c.readSource(runs) }()
	var rerr error
	if readBack {
		rerr = c.readReplica(ctx, runs)
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
		if err := c.e.saveItem(c.it); err != nil {
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
	c.j.progress(c.rd.Compared, c.rd.Total)
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
// source's end (the replica is rounded up to 1 MiB) are zeros. The VM may
// be writing: every byte it changes from now on is in the logs after the
// base and is shipped after the compare.
func (c *comparer) readSource(runs [][2]int) error {
	pos := 0
	for _, r := range runs {
		off, n := int64(r[0])*blockSize, r[1]*blockSize
		p := c.sbuf[pos : pos+n]
		have := max(0, min(int64(n), c.d.Size-off))
		clear(p[have:])
		if have > 0 {
			if _, err := c.src.ReadAt(p[:have], off); err != nil {
				return fmt.Errorf("read source %s at %d: %w", c.d.Path, off, err)
			}
		}
		pos += n
	}
	return nil
}

// readReplica fills rbuf with the runs' blocks as the replica holds them.
func (c *comparer) readReplica(ctx context.Context, runs [][2]int) error {
	pos := 0
	for _, r := range runs {
		off, n := int64(r[0])*blockSize, int64(r[1])*blockSize
		for done := int64(0); done < n; {
			m := min(n-done, target.MaxWrite)
			p := c.rbuf[pos+int(done) : pos+int(done+m)]
			if c.rd.ZeroFrom > 0 && off+done >= c.rd.ZeroFrom {
				clear(p) // the grown region: never written
			} else {
				if err := c.t.ReadAt(ctx, c.d.Replica, "", p, off+done); err != nil {
					return fmt.Errorf("read replica %s at %d: %w", c.d.Replica, off+done, err)
				}
				c.rd.Read += m
			}
			done += m
		}
		pos += int(n)
	}
	return nil
}

// send writes the differing blocks (positions in the batch) to the
// replica, joining neighbours into writes of up to target.MaxWrite, on
// sendWorkers at once: each write is durable on its own, so their syncs
// (or round trips) overlap.
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
				if err := c.t.WritePages(ctx, c.d.Replica, off, c.sbuf[w[0]*blockSize:(w[1]+1)*blockSize]); err != nil && first == nil {
					first = fmt.Errorf("write replica %s at %d: %w", c.d.Replica, off, err)
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

// checkpoint records how far the disk's compare got, storing the map
// first when one is kept; done also closes the disk's part.
func (c *comparer) checkpoint(ctx context.Context, done bool) error {
	if c.tab != nil && (c.byMap || done) {
		digest, err := c.e.storeMap(ctx, c.t, c.it.VM, c.d.Name, c.tab)
		if err != nil {
			return err
		}
		c.d.MapDigest, c.d.MapPoint = digest, ""
		c.rd.Sending = nil
	}
	c.rd.Done, c.rd.ComparedAtNext = done, c.rd.Compared
	if err := c.e.saveItem(c.it); err != nil {
		return err
	}
	c.j.j.Bytes = 0
	for _, d := range c.it.Resync.Disks {
		c.j.j.Bytes += d.Sent
	}
	if err := c.j.save(); err != nil { // asr jobs shows the progress
		return err
	}
	if c.tab != nil {
		c.e.dropMaps(ctx, c.t, c.it.VM, c.d.Name, c.d.MapDigest)
	}
	return nil
}
