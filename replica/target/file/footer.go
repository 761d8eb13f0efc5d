package file

import (
	"encoding/binary"
	"time"
)

// footerSize is the size of the fixed VHD footer after the virtual disk.
const footerSize = 512

// vhdEpoch is the origin of VHD time stamps.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// fixedFooter builds the footer of a fixed VHD of the given virtual size,
// as Microsoft's VHD specification (2006) lays it out, big-endian.
//
// TODO(lead): replace with vhd.FixedFooter once replica/vhd has it.
func fixedFooter(size int64, id [16]byte, now time.Time) [footerSize]byte {
	var f [footerSize]byte
	be := binary.BigEndian
	copy(f[0:], "conectix")
	be.PutUint32(f[8:], 2)                   // features: reserved bit, always set
	be.PutUint32(f[12:], 0x00010000)         // file format version 1.0
	be.PutUint64(f[16:], ^uint64(0))         // data offset: none for fixed disks
	be.PutUint32(f[24:], vhdTimestamp(now))  // seconds since 2000-01-01 UTC
	copy(f[28:], "win ")                     // creator: readers trust the size field
	be.PutUint32(f[32:], 0x000a0000)         // creator version 10.0 (Hyper-V)
	copy(f[36:], "Wi2k")                     // creator host OS: Windows
	be.PutUint64(f[40:], uint64(size))       // original size
	be.PutUint64(f[48:], uint64(size))       // current size
	be.PutUint32(f[56:], chsGeometry(size))  // cylinders(16) heads(8) sectors(8)
	be.PutUint32(f[60:], 2)                  // disk type: fixed
	copy(f[68:], id[:])                      // unique id
	be.PutUint32(f[64:], footerChecksum(&f)) // f[84] saved state stays 0
	return f
}

func vhdTimestamp(now time.Time) uint32 {
	s := now.Sub(vhdEpoch) / time.Second
	if s < 0 {
		return 0
	}
	return uint32(s)
}

// footerChecksum is the one's complement of the sum of all footer bytes,
// the checksum field itself excluded.
func footerChecksum(f *[footerSize]byte) uint32 {
	var sum uint32
	for i, c := range f {
		if i < 64 || i >= 68 {
			sum += uint32(c)
		}
	}
	return ^sum
}

// chsGeometry is the CHS algorithm of the VHD specification's appendix,
// packed as cylinders<<16 | heads<<8 | sectors per track.
func chsGeometry(size int64) uint32 {
	total := size / 512
	total = min(total, 65535*16*255)
	var spt, heads, cth int64
	if total >= 65535*16*63 {
		spt, heads = 255, 16
		cth = total / spt
	} else {
		spt = 17
		cth = total / spt
		heads = max((cth+1023)/1024, 4)
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = total / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = total / spt
		}
	}
	cyl := cth / heads
	return uint32(cyl)<<16 | uint32(heads)<<8 | uint32(spt)
}
