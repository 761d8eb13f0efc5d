package vhd

import (
	"bytes"
	"fmt"
)

// WriteAt writes virtual disk bytes; the whole range must lie inside the
// disk. On a dynamic or differencing disk a write to an unallocated block
// allocates it at the end of the file. The steps are ordered so the file is
// a valid VHD between any two of them: the footer is first copied to the
// new end, then the block's bitmap and data are written over the old
// footer, and only then does the BAT entry point at the block. A crash
// leaks at most one unreferenced block. Durability needs Sync.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	if !d.writable {
		return 0, fmt.Errorf("vhd %s: write at offset %d: %w", d.path, off, ErrReadOnly)
	}
	if off < 0 || off > d.size || int64(len(p)) > d.size-off {
		return 0, fmt.Errorf("vhd %s: write of %d bytes at offset %d past the %d-byte disk: %w",
			d.path, len(p), off, d.size, ErrOutOfRange)
	}
	if d.typ == TypeFixed || d.typ == TypeRaw {
		n, err := d.f.WriteAt(p, off)
		if err != nil {
			return n, fmt.Errorf("vhd %s: write at offset %d: %w", d.path, off, err)
		}
		return n, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	done := 0
	for done < len(p) {
		blk, in := off/d.bs, off%d.bs
		n := int(min(int64(len(p)-done), d.bs-in))
		if err := d.writeBlock(blk, in, p[done:done+n], off); err != nil {
			return done, err
		}
		done, off = done+n, off+int64(n)
	}
	return done, nil
}

// writeBlock writes p at byte in of block blk (virtual offset off).
func (d *Disk) writeBlock(blk, in int64, p []byte, off int64) error {
	if d.typ == TypeDifferencing {
		// A set bitmap bit claims the whole sector, so partial sectors are
		// completed with what the disk reads there now (often the parent).
		lo, hi := in/sectorSize*sectorSize, (in+int64(len(p))+sectorSize-1)/sectorSize*sectorSize
		if lo != in || hi != in+int64(len(p)) {
			buf := make([]byte, hi-lo)
			vlo := off - (in - lo)
			if err := d.readBlocks(buf[:sectorSize], vlo); err != nil {
				return err
			}
			if err := d.readBlocks(buf[len(buf)-sectorSize:], vlo+int64(len(buf))-sectorSize); err != nil {
				return err
			}
			copy(buf[in-lo:], p)
			p, in = buf, lo
		}
	}
	e := d.bat[blk]
	fresh := e == batUnused
	if fresh {
		var err error
		if e, err = d.allocate(); err != nil {
			return err
		}
	}
	if err := d.pwrite(p, d.dataPos(e)+in, "block data"); err != nil {
		return err
	}
	if err := d.setBits(e, in/sectorSize, (in+int64(len(p))-1)/sectorSize); err != nil {
		return err
	}
	if fresh {
		var b [4]byte
		be.PutUint32(b[:], e)
		if err := d.pwrite(b[:], d.hdr.tableOffset+blk*4, "BAT entry"); err != nil {
			return err
		}
		d.bat[blk] = e
	}
	return nil
}

// allocate appends an unreferenced block (bitmap and zero data) and moves
// the footer past it. Dynamic blocks get an all-ones bitmap, as qemu
// writes them: their unwritten sectors read as zeros either way.
func (d *Disk) allocate() (uint32, error) {
	pos := (d.footerOff + sectorSize - 1) / sectorSize * sectorSize
	if pos/sectorSize >= batUnused {
		return 0, fmt.Errorf("vhd %s: new block at %d is past the 2 TiB a BAT entry can address: %w",
			d.path, pos, ErrOutOfRange)
	}
	newFooter := pos + d.bmSize + d.bs
	if err := d.pwrite(d.ft.raw[:], newFooter, "footer"); err != nil {
		return 0, err
	}
	bm := make([]byte, d.bmSize)
	if d.typ == TypeDynamic {
		for i := range bm {
			bm[i] = 0xff
		}
	}
	if err := d.pwrite(bm, pos, "sector bitmap"); err != nil {
		return 0, err
	}
	d.footerOff = newFooter
	return uint32(pos / sectorSize), nil
}

// setBits marks sectors s0..s1 of the block at entry e present, writing the
// bitmap bytes only when they change.
func (d *Disk) setBits(e uint32, s0, s1 int64) error {
	pos := int64(e)*sectorSize + s0/8
	bm := make([]byte, s1/8-s0/8+1)
	if err := d.readFile(bm, pos, "sector bitmap"); err != nil {
		return err
	}
	old := bytes.Clone(bm)
	for s := s0; s <= s1; s++ {
		bm[s/8-s0/8] |= 0x80 >> (s % 8)
	}
	if bytes.Equal(old, bm) {
		return nil
	}
	return d.pwrite(bm, pos, "sector bitmap")
}

func (d *Disk) pwrite(p []byte, off int64, what string) error {
	if _, err := d.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("vhd %s: write %s at offset %d: %w", d.path, what, off, err)
	}
	return nil
}
