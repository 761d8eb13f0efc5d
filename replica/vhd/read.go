package vhd

import (
	"fmt"
	"io"
)

// ReadAt reads virtual disk bytes. Unallocated blocks read as zeros, or
// through the parent chain for a differencing disk. Like io.ReaderAt it
// returns io.EOF with a short count at the end of the disk.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("vhd %s: read at offset %d: %w", d.path, off, ErrOutOfRange)
	}
	if off >= d.size {
		return 0, io.EOF
	}
	n, short := len(p), false
	if int64(n) > d.size-off {
		n, short = int(d.size-off), true
	}
	var err error
	switch d.typ {
	case TypeFixed, TypeRaw:
		err = d.readFile(p[:n], off, "data")
	default:
		d.mu.RLock()
		err = d.readBlocks(p[:n], off)
		d.mu.RUnlock()
	}
	if err != nil {
		return 0, err
	}
	if short {
		return n, io.EOF
	}
	return n, nil
}

// readFile is pread that reports a file shorter than its metadata says.
func (d *Disk) readFile(p []byte, off int64, what string) error {
	n, err := d.f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == io.EOF {
		return formatErr(d.path, what, off, 0, ErrTruncated, "file ends %d bytes into a %d-byte read", n, len(p))
	}
	return fmt.Errorf("vhd %s: read %s at offset %d: %w", d.path, what, off, err)
}

// readBlocks reads [off, off+len(p)) of a dynamic or differencing disk with
// one pread per block piece; d.mu is held by the caller. A dynamic disk's
// sector bitmap is ignored (as qemu and Hyper-V do): its blocks hold zeros
// where nothing was written.
func (d *Disk) readBlocks(p []byte, off int64) error {
	for len(p) > 0 {
		blk, in := off/d.bs, off%d.bs
		n := min(int64(len(p)), d.bs-in)
		e := d.bat[blk]
		var err error
		switch {
		case e == batUnused:
			err = d.readParent(p[:n], off)
		case d.typ == TypeDynamic:
			err = d.readFile(p[:n], d.dataPos(e)+in, "block data")
		default:
			err = d.readDiffBlock(p[:n], e, in, off)
		}
		if err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// dataPos is the file offset of a block's data, past its sector bitmap.
func (d *Disk) dataPos(e uint32) int64 { return int64(e)*sectorSize + d.bmSize }

// readParent fills p from the parent, or with zeros when there is none or
// the parent is smaller than the child.
func (d *Disk) readParent(p []byte, off int64) error {
	n := 0
	if d.parent != nil {
		var err error
		n, err = d.parent.ReadAt(p, off)
		if err != nil && err != io.EOF {
			return err
		}
	}
	clear(p[n:])
	return nil
}

// readDiffBlock reads part of an allocated differencing block: runs of
// sectors whose bitmap bit is set come from this file, the rest from the
// parent.
func (d *Disk) readDiffBlock(p []byte, e uint32, in, off int64) error {
	s0, s1 := in/sectorSize, (in+int64(len(p))-1)/sectorSize
	bm := make([]byte, s1/8-s0/8+1)
	if err := d.readFile(bm, int64(e)*sectorSize+s0/8, "sector bitmap"); err != nil {
		return err
	}
	bit := func(s int64) bool { return bm[s/8-s0/8]&(0x80>>(s%8)) != 0 }
	for s := s0; s <= s1; {
		set := bit(s)
		t := s + 1
		for t <= s1 && bit(t) == set {
			t++
		}
		// Bytes of p covered by sectors [s, t).
		lo := max(s*sectorSize, in) - in
		hi := min(t*sectorSize, in+int64(len(p))) - in
		var err error
		if set {
			err = d.readFile(p[lo:hi], d.dataPos(e)+in+lo, "block data")
		} else {
			err = d.readParent(p[lo:hi], off+lo)
		}
		if err != nil {
			return err
		}
		s = t
	}
	return nil
}
