package file

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"

	"github.com/asr-project/asr/replica/target"
)

// granule is the unit of copy-on-write. See doc.go for why 64 KiB.
const granule = 64 << 10

// The pre-image index of one snapshot: a 32-byte header, then 16-byte
// records appended one batch per preserving write. Little-endian.
//
//	header: "ASRPRE01" | granule u32 | 0 u32 | disk size u64 | 0 u32 | crc32c(bytes 0-27) u32
//	record: first granule u64 | count u32 | crc32c(bytes 0-11) u32
//
// The header's disk size is the disk's virtual size when the snapshot was
// taken: the snapshot's own size, which a later ResizeDisk leaves alone.
const (
	indexMagic  = "ASRPRE01"
	indexHeader = 32
	recordSize  = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// run is count granules from first on.
type run struct {
	first uint64
	count uint32
}

// preIndex is a loaded index: which granules the snapshot holds
// pre-images of.
type preIndex struct {
	path  string
	size  int64  // file size when loaded or last appended: the cache check
	valid int64  // end of the last good record
	disk  int64  // the snapshot's virtual size, from the header
	n     uint64 // granules in disk
	bits  []uint64
}

// has reports whether the snapshot holds granule g's pre-image; granules
// past the snapshot's size (the disk grew since) it never holds.
func (ix *preIndex) has(g uint64) bool { return g < ix.n && ix.bits[g/64]&(1<<(g%64)) != 0 }

func (ix *preIndex) add(r run) {
	for g := r.first; g < r.first+uint64(r.count); g++ {
		ix.bits[g/64] |= 1 << (g % 64)
	}
}

func indexHeaderBytes(diskSize int64) []byte {
	b := make([]byte, indexHeader)
	copy(b, indexMagic)
	binary.LittleEndian.PutUint32(b[8:], granule)
	binary.LittleEndian.PutUint64(b[16:], uint64(diskSize))
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

func (r run) record() []byte {
	b := make([]byte, recordSize)
	binary.LittleEndian.PutUint64(b, r.first)
	binary.LittleEndian.PutUint32(b[8:], r.count)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
	return b
}

// loadIndex reads an index. A record whose checksum fails is skipped when it
// is all zero or comes after the last good record (an append that a crash
// cut short: its pre-images were synced before it, but it was never
// acknowledged, so dropping it only costs a re-save); a bad non-zero record
// before a good one is damage and fails. With repair (exclusive lock held)
// a torn tail is cut off so the next append starts on a record boundary.
func loadIndex(path string, repair bool) (*preIndex, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file target: snapshot index %s is missing (the snapshot directory is damaged; delete the snapshot): %w", path, ErrCorrupt)
	}
	if err != nil {
		return nil, ioErr("open", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, ioErr("stat", path, err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, indexHeader)
	_, err = io.ReadFull(r, hdr)
	diskSize := int64(binary.LittleEndian.Uint64(hdr[16:]))
	if err != nil || diskSize <= 0 || diskSize%target.SizeUnit != 0 || string(hdr) != string(indexHeaderBytes(diskSize)) {
		return nil, fmt.Errorf("file target: snapshot index %s: header is not that of a disk of whole MiB with %d-byte granules (delete the snapshot): %w", path, granule, ErrCorrupt)
	}
	ix := &preIndex{path: path, size: fi.Size(), valid: indexHeader, disk: diskSize, n: uint64(diskSize / granule)}
	ix.bits = make([]uint64, (ix.n+63)/64)
	rec := make([]byte, recordSize)
	badAt := int64(-1)
	for off := int64(indexHeader); ; off += recordSize {
		if _, err := io.ReadFull(r, rec); err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		} else if err != nil {
			return nil, ioErr("read", path, err)
		}
		first := binary.LittleEndian.Uint64(rec)
		count := binary.LittleEndian.Uint32(rec[8:])
		ok := binary.LittleEndian.Uint32(rec[12:]) == crc32.Checksum(rec[:12], castagnoli) &&
			count > 0 && first < ix.n && uint64(count) <= ix.n-first
		switch {
		case ok && badAt >= 0:
			return nil, fmt.Errorf("file target: snapshot index %s: damaged record at offset %d before good ones (restore the target or delete the snapshot): %w", path, badAt, ErrCorrupt)
		case ok:
			ix.add(run{first, count})
			ix.valid = off + recordSize
		case !allZero(rec) && badAt < 0:
			badAt = off
		}
	}
	if repair && ix.size != ix.valid {
		if err := ix.truncate(f); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

func (ix *preIndex) truncate(f *os.File) error {
	if err := f.Truncate(ix.valid); err != nil {
		return ioErr("cut the torn tail of", ix.path, err)
	}
	if err := fdatasync(f); err != nil {
		return err
	}
	ix.size = ix.valid
	return nil
}

// appendRuns records runs as preserved, durably. Their pre-images must
// already be synced. Called with the disk's exclusive lock.
func (ix *preIndex) appendRuns(runs []run) error {
	f, err := os.OpenFile(ix.path, os.O_RDWR, 0)
	if err != nil {
		return ioErr("open", ix.path, err)
	}
	defer f.Close()
	if ix.size != ix.valid {
		if err := ix.truncate(f); err != nil {
			return err
		}
	}
	var buf []byte
	for _, r := range runs {
		buf = append(buf, r.record()...)
	}
	_, err = f.WriteAt(buf, ix.valid)
	if err == nil {
		err = fdatasync(f)
	}
	if err != nil {
		ix.size = -1 // whatever reached the file, the next use reloads and repairs
		return ioErr("append to", ix.path, err)
	}
	ix.valid += int64(len(buf))
	ix.size = ix.valid
	for _, r := range runs {
		ix.add(r)
	}
	return nil
}

// toRuns groups ascending granule numbers into runs.
func toRuns(gs []uint64) []run {
	var rs []run
	for _, g := range gs {
		if n := len(rs); n > 0 && rs[n-1].first+uint64(rs[n-1].count) == g && rs[n-1].count < 1<<30 {
			rs[n-1].count++
			continue
		}
		rs = append(rs, run{first: g, count: 1})
	}
	return rs
}
