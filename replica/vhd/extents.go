package vhd

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Extents returns the allocated virtual ranges, sorted and merged, without
// reading any data. Dynamic: the blocks with a BAT entry (clipped to the
// disk size); differencing: the union with the parent's extents. Fixed and
// raw: the data regions of the (sparse) file, or the whole disk where the
// file system cannot tell. Allocated ranges may still hold zeros.
func (d *Disk) Extents() ([]Extent, error) {
	var out []Extent
	switch d.typ {
	case TypeFixed, TypeRaw:
		var err error
		if out, err = d.fileExtents(); err != nil {
			return nil, err
		}
	default:
		d.mu.RLock()
		for i, e := range d.bat {
			if e != batUnused {
				off := int64(i) * d.bs
				out = append(out, Extent{off, min(d.bs, d.size-off)})
			}
		}
		d.mu.RUnlock()
		if d.parent != nil {
			pe, err := d.parent.Extents()
			if err != nil {
				return nil, err
			}
			for _, x := range pe { // a larger parent shows only up to our size
				if x.Off < d.size {
					out = append(out, Extent{x.Off, min(x.Len, d.size-x.Off)})
				}
			}
		}
	}
	return mergeExtents(out), nil
}

// fileExtents walks the file with SEEK_DATA/SEEK_HOLE over [0, size).
func (d *Disk) fileExtents() ([]Extent, error) {
	d.seekMu.Lock()
	defer d.seekMu.Unlock()
	fd := int(d.f.Fd())
	var out []Extent
	for off := int64(0); off < d.size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && data >= d.size) {
			break
		}
		if err != nil {
			// EINVAL / EOPNOTSUPP: no sparse-file support, assume all data.
			return []Extent{{0, d.size}}, nil
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("vhd %s: SEEK_HOLE at %d: %w", d.path, data, err)
		}
		out = append(out, Extent{data, min(hole, d.size) - data})
		off = hole
	}
	return out, nil
}

// mergeExtents sorts and joins touching or overlapping ranges.
func mergeExtents(in []Extent) []Extent {
	slices.SortFunc(in, func(a, b Extent) int {
		switch {
		case a.Off < b.Off:
			return -1
		case a.Off > b.Off:
			return 1
		}
		return 0
	})
	out := in[:0]
	for _, x := range in {
		if x.Len <= 0 {
			continue
		}
		if n := len(out); n > 0 && x.Off <= out[n-1].Off+out[n-1].Len {
			out[n-1].Len = max(out[n-1].Len, x.Off+x.Len-out[n-1].Off)
			continue
		}
		out = append(out, x)
	}
	return out
}

// AllocatedBytes is the total length of Extents.
func (d *Disk) AllocatedBytes() (int64, error) {
	ext, err := d.Extents()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, x := range ext {
		n += x.Len
	}
	return n, nil
}

var zeroPage [64 << 10]byte

// IsZero reports whether p holds only zero bytes. bytes.Equal against a
// zero page runs the vectorised memequal, several GB/s per core.
func IsZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(zeroPage))
		if !bytes.Equal(p[:n], zeroPage[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// SizeUnit is the granularity Azure requires of a fixed VHD's virtual size.
const SizeUnit = 1 << 20

// RoundSize rounds size up to a multiple of SizeUnit (1 MiB); negative
// sizes round to 0.
func RoundSize(size int64) int64 {
	if size <= 0 {
		return 0
	}
	return (size + SizeUnit - 1) / SizeUnit * SizeUnit
}
