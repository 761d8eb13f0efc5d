package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// The activity log, <disk>.asr-al: which extents of the disk may hold
// writes that no durable record (log metadata, or the dirty map) covers
// yet. See the package doc for the rules and the format.
const (
	alSlot            = 16 << 10
	alHeader          = 64
	alMaxExtents      = (alSlot - alHeader) / 8
	defaultExtentSize = 8 << 20
	defaultALExtents  = alMaxExtents
	// alPrefetch extents after a sequential miss join the log with it, so a
	// streaming write pays one activity-log update per few extents.
	alPrefetch = 3
)

var alMagic = [8]byte{'a', 's', 'r', '-', 'a', 'l', 0, 1}

// ErrNoActivityLog: a log was left open but the disk's activity log is
// missing or unreadable, so the regions the crash may have hidden are
// unknown.
var ErrNoActivityLog = errors.New("no readable activity log")

// errALWrite: an activity-log record could not be written; the disk must
// be degraded with every granule marked.
var errALWrite = errors.New("activity log write failed")

func alPath(disk string) string { return disk + ".asr-al" }

// alRecord is one slot of the activity log file.
type alRecord struct {
	Gen        uint64
	ExtentSize int64
	DiskSize   int64
	Extents    []uint64
}

func (r alRecord) marshal() []byte {
	b := make([]byte, alSlot)
	le := binary.LittleEndian
	copy(b, alMagic[:])
	le.PutUint64(b[16:], r.Gen)
	le.PutUint64(b[24:], uint64(r.ExtentSize))
	le.PutUint64(b[32:], uint64(r.DiskSize))
	le.PutUint32(b[40:], uint32(len(r.Extents)))
	for i, e := range r.Extents {
		le.PutUint64(b[alHeader+8*i:], e)
	}
	le.PutUint32(b[8:], crc32.Checksum(b[16:], castagnoli))
	return b
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func parseALSlot(b []byte) (alRecord, bool) {
	le := binary.LittleEndian
	if len(b) < alSlot || [8]byte(b[:8]) != alMagic || le.Uint32(b[8:]) != crc32.Checksum(b[16:alSlot], castagnoli) {
		return alRecord{}, false
	}
	r := alRecord{Gen: le.Uint64(b[16:]), ExtentSize: int64(le.Uint64(b[24:])), DiskSize: int64(le.Uint64(b[32:]))}
	n := int(le.Uint32(b[40:]))
	if n > alMaxExtents || r.ExtentSize <= 0 {
		return alRecord{}, false
	}
	for i := range n {
		r.Extents = append(r.Extents, le.Uint64(b[alHeader+8*i:]))
	}
	return r, true
}

// readAL returns the newest valid record of a disk's activity log.
func readAL(disk string) (alRecord, error) {
	b, err := os.ReadFile(alPath(disk))
	if err != nil {
		return alRecord{}, fmt.Errorf("disk %s: %w: %v", disk, ErrNoActivityLog, err)
	}
	var best alRecord
	found := false
	for off := 0; off+alSlot <= len(b); off += alSlot {
		if r, ok := parseALSlot(b[off : off+alSlot]); ok && (!found || r.Gen > best.Gen) {
			best, found = r, true
		}
	}
	if !found {
		return alRecord{}, fmt.Errorf("disk %s: %s: %w", disk, alPath(disk), ErrNoActivityLog)
	}
	return best, nil
}

type alExtent struct {
	durable  bool   // named by a durable record
	inflight int    // writes into it that have not completed
	dirty    uint64 // epoch in which its last write completed
	used     uint64 // LRU clock
}

// activityLog keeps the set in memory and writes it, durably, before the
// first write into an extent not yet in it.
type activityLog struct {
	mu       sync.Mutex
	cond     sync.Cond
	f        *os.File
	path     string
	extSize  int64
	nExt     uint64
	size     int64
	capacity int
	ext      map[uint64]*alExtent
	gen      uint64
	writing  bool
	clock    uint64
	// epoch counts checkpoints begun; an extent is clean (may leave the
	// log) when no write is in it and its last write completed in an epoch
	// a finished checkpoint covers.
	epoch, clean uint64
	broken       error
	closed       bool // the tracker stopped: no record may follow
	// checkpoint makes every completed write durable (log metadata or dirty
	// map, and the disk); it is called without mu.
	checkpoint func() error
	synced     func(path string)

	// cleaning: a checkpoint started by cleanAhead is running.
	cleaning bool

	updates, checkpoints uint64
}

// openAL opens (or creates) a disk's activity log and writes an empty
// record: the caller has made every earlier write durable.
func openAL(disk string, size, extSize int64, capacity int, checkpoint func() error, synced func(string)) (*activityLog, error) {
	f, err := os.OpenFile(alPath(disk), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("activity log of %s: %w", disk, err)
	}
	al := &activityLog{f: f, path: alPath(disk), extSize: extSize, size: size, capacity: capacity,
		nExt: uint64((size + extSize - 1) / extSize), ext: map[uint64]*alExtent{}, epoch: 1,
		checkpoint: checkpoint, synced: synced}
	al.cond.L = &al.mu
	if old, err := readAL(disk); err == nil {
		al.gen = old.Gen
	}
	// Both slots are written (allocated) now, so a record write never
	// changes the file's size or blocks and fdatasync has no metadata to
	// flush: on ext4 an fsync that commits the journal would also write out
	// every allocating write of the disk and its log.
	r := al.record()
	_, err = f.WriteAt(r.marshal(), int64(1-r.Gen%2)*alSlot)
	if err == nil {
		err = al.write(r)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("activity log of %s: %w", disk, err)
	}
	return al, nil
}

func (al *activityLog) record() alRecord {
	r := alRecord{Gen: al.gen + 1, ExtentSize: al.extSize, DiskSize: al.size}
	for e := range al.ext {
		r.Extents = append(r.Extents, e)
	}
	slices.Sort(r.Extents)
	return r
}

// write stores r in the slot its generation picks, never the slot holding
// the current record, and makes it durable.
func (al *activityLog) write(r alRecord) error {
	if _, err := al.f.WriteAt(r.marshal(), int64(r.Gen%2)*alSlot); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(al.f.Fd())); err != nil {
		return err
	}
	al.gen = r.Gen
	al.updates++
	if al.synced != nil {
		al.synced(al.path)
	}
	return nil
}

// begin admits a write of [off, off+n): when it returns nil, every extent
// the write touches is in a durable record and counted in flight. A write
// reserves all its extents at once or none, so writers can't take each
// other's extents away (or all of the room) while they wait. Writes that
// miss while a record is being written wait together; the next record
// carries all their extents (group commit). A write with n > 0 only.
func (al *activityLog) begin(off, n int64) (uint64, uint64, error) {
	a, b := uint64(off/al.extSize), uint64((off+n-1)/al.extSize)
	al.mu.Lock()
	defer al.mu.Unlock()
	reserved := false
	for {
		if al.closed {
			if reserved {
				al.release(a, b)
			}
			return 0, 0, ErrClosed
		}
		if al.broken != nil {
			if reserved {
				al.release(a, b)
			}
			return a, b, nil // the disk is degraded with a full dirty map
		}
		if !reserved {
			var missing []uint64
			for e := a; e <= b; e++ {
				if al.ext[e] == nil {
					missing = append(missing, e)
				}
			}
			for len(al.ext)+len(missing) > al.capacity && al.evict(a, b) {
			}
			if len(al.ext)+len(missing) > al.capacity {
				if al.writing || !al.cleanable() {
					al.cond.Wait() // a record or a completing write frees room
					continue
				}
				al.checkpoints++
				al.mu.Unlock()
				err := al.checkpoint()
				al.mu.Lock()
				if err != nil {
					return 0, 0, err
				}
				continue
			}
			for _, e := range missing {
				al.ext[e] = &alExtent{}
			}
			for e := a; e <= b; e++ {
				x := al.ext[e]
				x.inflight++
				al.clock++
				x.used = al.clock
			}
			reserved = true
			if len(missing) > 0 {
				al.cleanAhead()
			}
			if x := al.ext[a-1]; len(missing) > 0 && a > 0 && x != nil {
				for e := b + 1; e <= b+alPrefetch && e < al.nExt; e++ {
					if al.ext[e] == nil && (len(al.ext) < al.capacity || al.evict(a, e)) {
						al.ext[e] = &alExtent{}
					}
				}
			}
		}
		ready := true
		for e := a; e <= b; e++ {
			ready = ready && al.ext[e].durable
		}
		if ready {
			return a, b, nil
		}
		if al.writing {
			al.cond.Wait()
			continue
		}
		al.writing = true
		r := al.record()
		al.mu.Unlock()
		err := al.write(r)
		al.mu.Lock()
		al.writing = false
		al.cond.Broadcast()
		if err != nil {
			al.broken = err
			al.release(a, b)
			return a, b, fmt.Errorf("%w: %v", errALWrite, err)
		}
		for _, e := range r.Extents {
			if x := al.ext[e]; x != nil {
				x.durable = true
			}
		}
	}
}

// cleanable says a checkpoint would let some extent go: one is durable
// and has no write in flight.
func (al *activityLog) cleanable() bool {
	for _, x := range al.ext {
		if x.durable && x.inflight == 0 {
			return true
		}
	}
	return false
}

// cleanAhead starts a checkpoint in the background once less than a
// quarter of the log's room is free or clean, so that a write missing the
// log finds a clean extent to evict instead of waiting out a checkpoint
// (under random writes over twice the log's reach, the guest saw a 200 ms
// stall every second). mu held.
func (al *activityLog) cleanAhead() {
	if al.cleaning || al.closed || al.broken != nil {
		return
	}
	room := al.capacity - len(al.ext)
	for _, x := range al.ext {
		if x.durable && x.inflight == 0 && x.dirty <= al.clean {
			room++
		}
	}
	if room >= al.capacity/4 {
		return
	}
	al.cleaning = true
	go func() {
		// A failure degrades the disk or fails the next forced checkpoint
		// too; this one only prepared room.
		_ = al.checkpoint()
		al.mu.Lock()
		al.cleaning = false
		al.mu.Unlock()
	}()
}

// release drops a reservation that won't become a write.
func (al *activityLog) release(a, b uint64) {
	for e := a; e <= b; e++ {
		if x := al.ext[e]; x != nil {
			x.inflight--
		}
	}
}

// evict drops the least recently used clean extent outside [keepA, keepB];
// false if there is none.
func (al *activityLog) evict(keepA, keepB uint64) bool {
	var victim uint64
	var best *alExtent
	for e, x := range al.ext {
		if (e < keepA || e > keepB) && x.durable && x.inflight == 0 && x.dirty <= al.clean && (best == nil || x.used < best.used) {
			victim, best = e, x
		}
	}
	if best != nil {
		delete(al.ext, victim)
	}
	return best != nil
}

// end records that the write begin admitted has completed.
func (al *activityLog) end(a, b uint64) {
	al.mu.Lock()
	defer al.mu.Unlock()
	if al.broken != nil {
		return // reservations no longer count
	}
	for e := a; e <= b; e++ {
		if x := al.ext[e]; x != nil {
			x.inflight--
			x.dirty = al.epoch
			if x.inflight == 0 {
				al.cond.Broadcast()
			}
		}
	}
}

// startCheckpoint opens a checkpoint: writes completed before it are the
// ones it will cover.
func (al *activityLog) startCheckpoint() uint64 {
	al.mu.Lock()
	defer al.mu.Unlock()
	e := al.epoch
	al.epoch++
	return e
}

// finishCheckpoint marks the writes of epoch e and before as durable.
func (al *activityLog) finishCheckpoint(e uint64) {
	al.mu.Lock()
	al.clean = max(al.clean, e)
	al.mu.Unlock()
	al.cond.Broadcast()
}

// stats returns the record updates written and the checkpoints forced.
func (al *activityLog) stats() (updates, checkpoints uint64) {
	al.mu.Lock()
	defer al.mu.Unlock()
	return al.updates, al.checkpoints
}

// empty writes a record naming no extent: every write is durable (the
// caller checkpointed with no write in flight).
func (al *activityLog) empty() error {
	al.mu.Lock()
	defer al.mu.Unlock()
	for al.writing {
		al.cond.Wait()
	}
	al.closed = true
	if al.broken != nil {
		return nil
	}
	clear(al.ext)
	return al.write(al.record())
}

// close ends the log's use; the file keeps its last record.
func (al *activityLog) close() {
	al.mu.Lock()
	defer al.mu.Unlock()
	for al.writing {
		al.cond.Wait()
	}
	al.closed = true
	al.f.Close()
}
