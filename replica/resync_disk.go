package replica

import (
	"context"
	"fmt"
	"slices"

	"github.com/asr-project/asr/chunker"
	"github.com/asr-project/asr/replica/image"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/tracker"
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

// resyncDisk is one disk's resync while it runs: the block sync engine
// (comparer) from the source disk to its replica, plus the checksum map
// kept for a remote replica.
type resyncDisk struct {
	*comparer
	e  *Engine
	t  target.Target
	it *vault.Item
	d  *vault.Disk
	j  *job
}

// compareDisk compares disk k of the resync from its checkpoint to the
// end and sends the blocks that differ.
func (e *Engine) compareDisk(ctx context.Context, t target.Target, it *vault.Item, k int, j *job) error {
	rd := &it.Resync.Disks[k]
	d := &it.Disks[slices.IndexFunc(it.Disks, func(d vault.Disk) bool { return d.Name == rd.Name })]
	src, err := image.Open(d.Path, DiskFormat(*d))
	if err != nil {
		return fmt.Errorf("disk %s: %w", d.Path, err)
	}
	defer src.Close()
	c := &resyncDisk{comparer: newComparer(src, d.Size, "source "+d.Path, targetSink{t, d.Replica}, "replica "+d.Replica, rd),
		e: e, t: t, it: it, d: d, j: j}
	c.save = func() error { return e.saveItem(it) }
	c.progress = j.progress
	if err := c.openMap(ctx); err != nil {
		return err
	}
	want, err := c.wanted()
	if err != nil {
		return err
	}
	every := int64(0)
	if c.byMap {
		every = mapEvery
	}
	return c.run(ctx, d.ReplicaSize, want, every, func(done bool) error { return c.checkpoint(ctx, done) })
}

// openMap decides how the replica side is known: read back (a local
// target, or no usable map) or from its checksum map; and whether a new
// map is built, which needs a full compare from the start.
func (c *resyncDisk) openMap(ctx context.Context) error {
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
func (c *resyncDisk) wanted() (func(int) bool, error) {
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

// checkpoint records how far the disk's compare got, storing the map
// first when one is kept; done also closes the disk's part.
func (c *resyncDisk) checkpoint(ctx context.Context, done bool) error {
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
