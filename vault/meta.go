package vault

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
)

// bbolt's on-disk layout (go.etcd.io/bbolt internal/common/meta.go and
// page.go), read here as plain bytes: bbolt's types are internal, and a
// damaged file must be judged before bbolt maps it.
const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2
	pageHeader  = 16 // id u64, flags u16, count u16, overflow u32
	metaSize    = 64 // magic, version, page size, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	sumSize     = 56 // the checksum covers the meta up to itself
	elemSize    = 16 // branch element: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	noFreelist  = ^uint64(0)

	branchPage   = 0x01
	leafPage     = 0x02
	freelistPage = 0x10
	bucketLeaf   = 0x01 // a leaf element whose value is a sub-bucket
)

// bbolt writes its structs in the machine's byte order.
var ne = binary.NativeEndian

type meta struct {
	pageSize                   int
	root, freelist, pgid, txid uint64
}

// metaInfo is what inspect learnt: the meta bbolt will use, and which meta
// page is damaged (0 or 1; -1 when both are sound).
type metaInfo struct {
	meta
	damaged int
}

// fallback is the Warn line for a damaged meta page.
func (m metaInfo) fallback(path string) string {
	return fmt.Sprintf("state file %s: meta page %d is damaged, so bbolt uses the other one: the state is rolled back to transaction %d and the last change may be lost; run `asr state check`",
		path, m.damaged, m.txid)
}

// parseMeta reads the meta of a page; problem says why it is not valid and
// magic whether it at least looked like bbolt's.
func parseMeta(page []byte) (m meta, magic bool, problem string) {
	if len(page) < pageHeader+metaSize {
		return m, false, "cut short"
	}
	b := page[pageHeader : pageHeader+metaSize]
	if ne.Uint32(b[0:]) != boltMagic {
		return m, false, "no bbolt magic"
	}
	if v := ne.Uint32(b[4:]); v != boltVersion {
		return m, true, fmt.Sprintf("bbolt version %d", v)
	}
	h := fnv.New64a()
	h.Write(b[:sumSize])
	if h.Sum64() != ne.Uint64(b[sumSize:]) {
		return m, true, "checksum mismatch"
	}
	m = meta{pageSize: int(ne.Uint32(b[8:])), root: ne.Uint64(b[16:]), freelist: ne.Uint64(b[32:]), pgid: ne.Uint64(b[40:]), txid: ne.Uint64(b[48:])}
	if m.pageSize < 1024 || m.pageSize > 1<<24 || m.pgid < 4 {
		return m, true, fmt.Sprintf("page size %d, %d pages", m.pageSize, m.pgid)
	}
	return m, true, ""
}

// readMeta picks the meta bbolt would use (the valid one with the higher
// transaction) and checks the file against it; detail is empty when sound.
func readMeta(f io.ReaderAt, size int64) (info metaInfo, detail string) {
	buf := make([]byte, pageHeader+metaSize)
	read := func(off int64) []byte { n, _ := f.ReadAt(buf, off); return buf[:n] }
	m0, magic0, bad0 := parseMeta(read(0))
	var m1 meta
	magic1, bad1 := false, "not found"
	if bad0 == "" {
		m1, magic1, bad1 = parseMeta(read(int64(m0.pageSize)))
	} else {
		// The page size is in page 0; without it, look for page 1 at each
		// size bbolt itself tries.
		for pos := int64(1024); pos <= 1<<24 && pos < size; pos <<= 1 {
			m, magic, bad := parseMeta(read(pos))
			if bad == "" && m.pageSize == int(pos) {
				m1, bad1 = m, ""
				break
			}
			if magic && !magic1 {
				magic1, bad1 = true, bad
			}
		}
	}
	info.damaged = -1
	switch {
	case bad0 != "" && bad1 != "" && !magic0 && !magic1:
		return info, "not a bbolt state file"
	case bad0 != "" && bad1 != "":
		return info, fmt.Sprintf("both meta pages damaged: page 0 %s, page 1 %s", bad0, bad1)
	case bad0 != "":
		info.meta, info.damaged = m1, 0
	case bad1 != "":
		info.meta, info.damaged = m0, 1
	case m1.txid > m0.txid:
		info.meta = m1
	default:
		info.meta = m0
	}
	if info.pgid > uint64(size)/uint64(info.pageSize) {
		return info, fmt.Sprintf("truncated: %d bytes, the file needs %d", size, info.pgid*uint64(info.pageSize))
	}
	// bbolt reads these two pages on every open or first lookup. The
	// freelist's count sizes an allocation, so a wild one would exhaust
	// memory rather than panic.
	if info.freelist != noFreelist {
		if d := checkPage(f, info.meta, info.freelist, freelistPage); d != "" {
			return info, "freelist " + d
		}
	}
	if d := checkPage(f, info.meta, info.root, branchPage, leafPage); d != "" {
		return info, "root bucket " + d
	}
	return info, ""
}

// checkPage reads one page header and says what is wrong with it: an id
// out of range or not its own, the wrong type, or more entries than fit.
func checkPage(f io.ReaderAt, m meta, id uint64, want ...uint16) string {
	if id < 2 || id >= m.pgid {
		return fmt.Sprintf("page id %d out of range", id)
	}
	var h [pageHeader + 8]byte
	if _, err := f.ReadAt(h[:], int64(id)*int64(m.pageSize)); err != nil {
		return fmt.Sprintf("page %d unreadable: %v", id, err)
	}
	return headerProblem(h[:], m, id, want...)
}

// headerProblem checks the header at the start of b (with the freelist's
// extended count after it, when there is one) as the header of page id.
func headerProblem(b []byte, m meta, id uint64, want ...uint16) string {
	got, flags, count, overflow := ne.Uint64(b[0:]), ne.Uint16(b[8:]), uint64(ne.Uint16(b[10:])), uint64(ne.Uint32(b[12:]))
	switch {
	case got != id:
		return fmt.Sprintf("page %d has the header of page %d", id, got)
	case !slices.Contains(want, flags):
		return fmt.Sprintf("page %d has type %#x", id, flags)
	case id+overflow >= m.pgid:
		return fmt.Sprintf("page %d runs past the last page (%d overflow pages)", id, overflow)
	}
	entry := uint64(elemSize)
	if flags == freelistPage {
		entry = 8
		if count == 0xFFFF && len(b) >= pageHeader+8 {
			count = min(ne.Uint64(b[pageHeader:]), 1<<60) + 1 // the first entry holds the count
		}
	}
	if room := ((overflow+1)*uint64(m.pageSize) - pageHeader) / entry; count > room {
		return fmt.Sprintf("page %d claims %d entries, room for %d", id, count, room)
	}
	return ""
}
