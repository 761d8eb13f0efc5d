package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// The dirty map, <disk>.asr-dirty: once logging stops for a disk, the
// granules written since its last sealed log. See the package doc.
const (
	dirtyHeader    = 4096
	dirtyMaxReason = dirtyHeader - 64
)

var dirtyMagic = [8]byte{'a', 's', 'r', '-', 'd', 'm', 0, 1}

func dirtyPath(disk string) string { return disk + ".asr-dirty" }

// Dirty is a disk's dirty map as stored.
type Dirty struct {
	// Reason says why logging stopped, for `asr status`.
	Reason string
	// FromSeq: logs numbered FromSeq and later are not part of the chain;
	// the map covers every write they held and every write after them.
	FromSeq uint64
	Granule int64
	Size    int64
	Bits    []uint64
}

// Marked lists the marked regions as [off, end) byte ranges, merged,
// clipped to the disk.
func (m *Dirty) Marked() [][2]int64 {
	var out [][2]int64
	for g := int64(0); g*m.Granule < m.Size; g++ {
		if m.Bits[g/64]&(1<<(g%64)) == 0 {
			continue
		}
		a, b := g*m.Granule, min((g+1)*m.Granule, m.Size)
		if n := len(out); n > 0 && out[n-1][1] == a {
			out[n-1][1] = b
		} else {
			out = append(out, [2]int64{a, b})
		}
	}
	return out
}

// ReadDirty reads a disk's dirty map; os.ErrNotExist when logging never
// stopped for it.
func ReadDirty(disk string) (*Dirty, error) { return readMap(dirtyPath(disk)) }

// readMap reads a map in the dirty map's format from path.
func readMap(path string) (*Dirty, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if len(b) < dirtyHeader || [8]byte(b[:8]) != dirtyMagic || le.Uint32(b[8:]) != crc32.Checksum(b[16:], castagnoli) {
		return nil, fmt.Errorf("dirty map %s is damaged; the disk needs a full resync: %w", path, ErrUntrusted)
	}
	m := &Dirty{Granule: int64(le.Uint64(b[16:])), Size: int64(le.Uint64(b[24:])), FromSeq: le.Uint64(b[32:])}
	n := int(le.Uint32(b[40:]))
	words := ((m.Size+m.Granule-1)/max(m.Granule, 1) + 63) / 64
	if m.Granule <= 0 || n > dirtyMaxReason || int64(len(b)) != dirtyHeader+8*words {
		return nil, fmt.Errorf("dirty map %s has an impossible layout: %w", path, ErrUntrusted)
	}
	m.Reason = string(b[64 : 64+n])
	for i := int64(0); i < words; i++ {
		m.Bits = append(m.Bits, le.Uint64(b[dirtyHeader+8*i:]))
	}
	return m, nil
}

// dirtyMap is the live map of a degraded disk.
type dirtyMap struct {
	bits    *bitmap
	reason  string
	fromSeq uint64
	size    int64
	changed atomic.Bool
	mu      sync.Mutex // one persist at a time: they share the temp file
}

func newDirtyMap(size int64, reason string, fromSeq uint64) *dirtyMap {
	m := &dirtyMap{bits: newBitmap(size), reason: reason, fromSeq: fromSeq, size: size}
	m.changed.Store(true)
	return m
}

func loadDirtyMap(disk string, size int64) (*dirtyMap, error) {
	d, err := ReadDirty(disk)
	if err != nil {
		return nil, err
	}
	m := newDirtyMap(size, d.Reason, d.FromSeq)
	if d.Granule != granule || d.Size != size {
		return nil, fmt.Errorf("dirty map %s was made for another disk size or granule: %w", dirtyPath(disk), ErrUntrusted)
	}
	for i, w := range d.Bits {
		m.bits.w[i].Store(w)
	}
	return m, nil
}

func (m *dirtyMap) mark(off, n int64) {
	m.bits.mark(off, n)
	m.changed.Store(true)
}

// persist writes the map beside the disk, durably and atomically (a
// reader sees the old map or the new one), if it changed since the last
// time.
func (m *dirtyMap) persist(disk string) error { return m.persistTo(dirtyPath(disk)) }

// persistTo writes the map to path, as persist.
func (m *dirtyMap) persistTo(path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.changed.Swap(false) {
		return nil
	}
	words := m.bits.words()
	b := make([]byte, dirtyHeader+8*len(words))
	le := binary.LittleEndian
	copy(b, dirtyMagic[:])
	le.PutUint64(b[16:], granule)
	le.PutUint64(b[24:], uint64(m.size))
	le.PutUint64(b[32:], m.fromSeq)
	reason := m.reason[:min(len(m.reason), dirtyMaxReason)]
	le.PutUint32(b[40:], uint32(len(reason)))
	copy(b[64:], reason)
	for i, w := range words {
		le.PutUint64(b[dirtyHeader+8*i:], w)
	}
	le.PutUint32(b[8:], crc32.Checksum(b[16:], castagnoli))
	if err := writeFileSync(path, b); err != nil {
		m.changed.Store(true)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeFileSync replaces path with data: temp file, fsync, rename, fsync
// of the directory.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
