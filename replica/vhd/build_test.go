package vhd

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf16"
)

// image describes a synthetic dynamic or differencing VHD for tests. The
// package only writes fixed VHDs and blocks into existing dynamic ones, so
// the tests build the rest of the format themselves.
type image struct {
	size     int64
	bs       int64
	diskType uint32
	id       [16]byte
	blocks   map[int64][]byte // block index -> bs bytes of data
	bitmaps  map[int64][]byte // optional per-block bitmap, else all ones

	parentID   [16]byte
	parentTime uint32
	parentName string           // header's parent unicode name
	locators   [][2]string      // {code, path}, encoded UTF-16LE
	mutate     func(img []byte) // last-minute corruption, checksums not redone
}

func utf16Bytes(s string, little bool) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		if little {
			b = append(b, byte(u), byte(u>>8))
		} else {
			b = append(b, byte(u>>8), byte(u))
		}
	}
	return b
}

func pad512(n int64) int64 { return (n + 511) / 512 * 512 }

// dynFooter is a footer of the given type pointing at a header at 512.
func dynFooter(size int64, diskType uint32, id [16]byte) []byte {
	b := FixedFooter(size, id, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	be.PutUint64(b[fDataOffset:], 512)
	be.PutUint32(b[fDiskType:], diskType)
	be.PutUint32(b[fChecksum:], checksum(b, fChecksum))
	return b
}

// bytes lays the image out as Hyper-V does: footer copy, header, BAT,
// locator data, blocks in index order, footer.
func (m image) bytes() []byte {
	if m.bs == 0 {
		m.bs = 2 << 20
	}
	if m.diskType == 0 {
		m.diskType = diskDynamic
	}
	entries := (m.size + m.bs - 1) / m.bs
	bmSize := pad512((m.bs/512 + 7) / 8)
	batOff := int64(1536)
	pos := batOff + pad512(entries*4)
	ft := dynFooter(m.size, m.diskType, m.id)
	hdr := make([]byte, headerSize)
	copy(hdr, headerCookie)
	be.PutUint64(hdr[8:], noDataOffset)
	be.PutUint64(hdr[hTableOffset:], uint64(batOff))
	be.PutUint32(hdr[24:], 0x00010000)
	be.PutUint32(hdr[hMaxEntries:], uint32(entries))
	be.PutUint32(hdr[hBlockSize:], uint32(m.bs))
	copy(hdr[hParentID:], m.parentID[:])
	be.PutUint32(hdr[hParentTime:], m.parentTime)
	copy(hdr[hParentName:hLocators], utf16Bytes(m.parentName, false))
	var locData []byte
	for i, l := range m.locators {
		data := utf16Bytes(l[1], true)
		e := hdr[hLocators+i*locatorSize:]
		copy(e, l[0])
		be.PutUint32(e[4:], 1) // data space: one sector
		be.PutUint32(e[8:], uint32(len(data)))
		be.PutUint64(e[16:], uint64(pos+int64(len(locData))))
		locData = append(locData, data...)
		locData = append(locData, make([]byte, pad512(int64(len(data)))-int64(len(data)))...)
	}
	be.PutUint32(hdr[hChecksum:], checksum(hdr, hChecksum))

	out := make([]byte, pos, pos+int64(len(locData))+int64(len(m.blocks))*(bmSize+m.bs)+512)
	copy(out, ft)
	copy(out[512:], hdr)
	for i := int64(0); i < entries; i++ {
		be.PutUint32(out[batOff+i*4:], batUnused)
	}
	out = append(out, locData...)
	for i := int64(0); i < entries; i++ {
		data, ok := m.blocks[i]
		if !ok {
			continue
		}
		be.PutUint32(out[batOff+i*4:], uint32(len(out)/512))
		bm := m.bitmaps[i]
		if bm == nil {
			bm = make([]byte, bmSize)
			for j := range bm {
				bm[j] = 0xff
			}
		}
		out = append(out, bm...)
		out = append(out, make([]byte, bmSize-int64(len(bm)))...)
		out = append(out, data...)
		out = append(out, make([]byte, m.bs-int64(len(data)))...)
	}
	out = append(out, ft...)
	if m.mutate != nil {
		m.mutate(out)
	}
	return out
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// childOf writes an empty differencing VHD named name next to parentPath,
// located by a relative W2ru locator, with block size bs.
func childOf(t testing.TB, parentPath, name string, bs int64) string {
	t.Helper()
	p, err := Open(parentPath)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	img := image{size: p.Size(), bs: bs, diskType: diskDifferencing, id: [16]byte{0xc0, byte(len(name))},
		parentID: p.ft.id, parentTime: p.ft.timestamp, parentName: filepath.Base(parentPath),
		locators: [][2]string{{"W2ru", `.\` + filepath.Base(parentPath)}, {"W2ku", `C:\vms\` + filepath.Base(parentPath)}}}
	copy(img.id[2:], name)
	return writeFile(t, filepath.Dir(parentPath), name, img.bytes())
}
