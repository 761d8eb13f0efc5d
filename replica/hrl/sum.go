package hrl

import "encoding/binary"

// byteSum returns the sum of the bytes of b modulo 2^32. Every HRL checksum
// is built on it and the data checksum runs over every logged byte twice
// (write and read), so it adds eight bytes per step: the even and odd bytes
// of a word land in four 16-bit lanes that cannot overflow within 128 words
// (128 * 2 * 255 < 65536).
func byteSum(b []byte) uint32 {
	const lanes = 0x00FF00FF00FF00FF
	var s uint32
	for len(b) >= 1024 {
		var a, c, d, e uint64
		p := b[:1024]
		for i := 0; i < 1024; i += 32 {
			q := p[i : i+32]
			w := binary.LittleEndian.Uint64(q)
			x := binary.LittleEndian.Uint64(q[8:])
			y := binary.LittleEndian.Uint64(q[16:])
			z := binary.LittleEndian.Uint64(q[24:])
			a += w&lanes + (w>>8)&lanes
			c += x&lanes + (x>>8)&lanes
			d += y&lanes + (y>>8)&lanes
			e += z&lanes + (z>>8)&lanes
		}
		s += fold(a+c) + fold(d+e)
		b = b[1024:]
	}
	var a uint64
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		a += w&lanes + (w>>8)&lanes
		b = b[8:]
	}
	s += fold(a)
	for _, v := range b {
		s += uint32(v)
	}
	return s
}

// fold adds the four 16-bit lanes of a.
func fold(a uint64) uint32 {
	a = a&0x0000FFFF0000FFFF + (a>>16)&0x0000FFFF0000FFFF
	return uint32(a) + uint32(a>>32)
}
