package azblob

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// footerSize is the fixed VHD footer that follows a disk's virtual bytes.
const footerSize = 512

// vhdEpoch is where VHD timestamps count from.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// newFooter builds the footer of a fixed VHD of the given virtual size
// with a fresh unique id. A stopgap until replica/vhd.FixedFooter lands.
func newFooter(size int64) []byte {
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails on supported systems
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return fixedFooter(size, time.Now(), id)
}

// fixedFooter lays out the 512-byte VHD footer (VHD spec, "Hard Disk
// Footer Format"), all fields big-endian.
func fixedFooter(size int64, now time.Time, id [16]byte) []byte {
	f := make([]byte, footerSize)
	be := binary.BigEndian
	copy(f[0:8], "conectix")
	be.PutUint32(f[8:], 2)                   // features: reserved bit always set
	be.PutUint32(f[12:], 0x00010000)         // file format version 1.0
	be.PutUint64(f[16:], 0xFFFFFFFFFFFFFFFF) // data offset: none for a fixed disk
	be.PutUint32(f[24:], uint32(now.Sub(vhdEpoch)/time.Second))
	copy(f[28:32], "win ")             // creator application, as Hyper-V and Azure write
	be.PutUint32(f[32:], 0x000A0000)   // creator version 10.0
	copy(f[36:40], "Wi2k")             // creator host OS
	be.PutUint64(f[40:], uint64(size)) // original size
	be.PutUint64(f[48:], uint64(size)) // current size
	c, h, s := chs(size)
	be.PutUint16(f[56:], c)
	f[58], f[59] = h, s
	be.PutUint32(f[60:], 2) // disk type: fixed
	copy(f[68:84], id[:])
	be.PutUint32(f[64:], footerChecksum(f))
	return f
}

// footerChecksum is the one's complement of the byte sum, checksum field
// excluded.
func footerChecksum(f []byte) uint32 {
	var sum uint32
	for i, b := range f {
		if i < 64 || i >= 68 {
			sum += uint32(b)
		}
	}
	return ^sum
}

// chs is the VHD spec's CHS geometry for a size, capped at 65535*16*255
// sectors.
func chs(size int64) (cyl uint16, heads, spt uint8) {
	total := size / 512
	if total > 65535*16*255 {
		total = 65535 * 16 * 255
	}
	var sectors, hds, cylTimesHeads int64
	if total >= 65535*16*63 {
		sectors, hds = 255, 16
		cylTimesHeads = total / sectors
	} else {
		sectors = 17
		cylTimesHeads = total / sectors
		hds = (cylTimesHeads + 1023) / 1024
		if hds < 4 {
			hds = 4
		}
		if cylTimesHeads >= hds*1024 || hds > 16 {
			sectors, hds = 31, 16
			cylTimesHeads = total / sectors
		}
		if cylTimesHeads >= hds*1024 {
			sectors, hds = 63, 16
			cylTimesHeads = total / sectors
		}
	}
	return uint16(cylTimesHeads / hds), uint8(hds), uint8(sectors)
}
