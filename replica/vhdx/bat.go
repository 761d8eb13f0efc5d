package vhdx

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Block Allocation Table ([MS-VHDX] 2.5): 64-bit entries, payload block
// entries interleaved with sector bitmap entries: after every chunkRatio
// payload entries comes one sector bitmap entry, chunkRatio being
// (2^23 * LogicalSectorSize) / BlockSize. An entry's state is in bits 0-2,
// its FileOffsetMB (the block's file offset in MiB) in bits 20-63.
const (
	batEntrySize    = 8
	batStateMask    = 7
	batOffsetMask   = ^uint64(mib - 1)
	sectorsPerChunk = 1 << 23

	minBlockSize = 1 * mib
	maxBlockSize = 256 * mib
)

// Payload block states ([MS-VHDX] 2.5.1.1), and qemu's state 5.
const (
	blockNotPresent       = 0
	blockUndefined        = 1
	blockZero             = 2
	blockUnmapped         = 3
	blockUnmappedV095     = 5 // UNMAPPED in draft 0.95 of the spec; qemu reads it as zeros
	blockFullyPresent     = 6
	blockPartiallyPresent = 7
)

var stateNames = [8]string{"PAYLOAD_BLOCK_NOT_PRESENT", "PAYLOAD_BLOCK_UNDEFINED", "PAYLOAD_BLOCK_ZERO",
	"PAYLOAD_BLOCK_UNMAPPED", "state 4", "state 5 (qemu's PAYLOAD_BLOCK_UNMAPPED_v095)",
	"PAYLOAD_BLOCK_FULLY_PRESENT", "PAYLOAD_BLOCK_PARTIALLY_PRESENT"}

// batChunk is how many bytes of the BAT a scan reads at a time (a variable
// so tests can make chunk boundaries fall everywhere).
var batChunk = 256 * kib

// Extent is a byte range of the virtual disk.
type Extent struct {
	Off int64 // a multiple of the block size
	Len int64 // > 0; whole blocks, except where the disk ends mid-block
}

// End is the offset just past e.
func (e Extent) End() int64 { return e.Off + e.Len }

// Extents reads the VHDX at path and returns the virtual byte ranges that
// may hold data, sorted and merged: the blocks whose BAT entry is
// PAYLOAD_BLOCK_FULLY_PRESENT or PARTIALLY_PRESENT. Everything else reads
// as zeros through qemu. It refuses a file whose log must be replayed
// first (ErrLogNotEmpty) and a differencing disk (ErrUnsupported). The
// slice holds one Extent per run of present blocks; ScanExtents reports
// them one at a time instead.
//
// A block whose entry points past the end of the file triggers one more
// stat before it is called corrupt: qemu extends the file before it
// records a new block, so a writer that grows the file during the scan
// is not mistaken for a truncated file.
func Extents(path string) ([]Extent, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := Parse(f, size, path)
	if err != nil {
		return nil, err
	}
	s := newBATScan(f, size, info)
	s.grow = func() (int64, error) {
		st, err := f.Stat()
		if err != nil {
			return 0, fmt.Errorf("vhdx: %w", err)
		}
		return st.Size(), nil
	}
	var out []Extent
	if err := s.run(func(e Extent) error { out = append(out, e); return nil }); err != nil {
		return nil, err
	}
	return out, nil
}

// ScanExtents calls fn with each extent Extents would return, in order,
// for the VHDX in the first size bytes of r, which Parse read as info. It
// reads the BAT 256 KiB at a time, so its memory does not grow with
// the disk. It stops at fn's first error and returns it. An info that
// Parse did not return is refused with a plain error.
func ScanExtents(r io.ReaderAt, size int64, info Info, fn func(Extent) error) error {
	return newBATScan(r, size, info).run(fn)
}

type batScan struct {
	p    *parser
	info Info
	grow func() (int64, error) // the file's size now, or nil

	buf    []byte // entries [lo, hi) of the BAT
	lo, hi uint64
}

func newBATScan(r io.ReaderAt, size int64, info Info) *batScan {
	return &batScan{p: &parser{r: r, size: size, path: info.Path}, info: info}
}

// geometry returns the number of payload blocks, the chunk ratio and the
// number of BAT entries the disk needs ([MS-VHDX] 2.5: for a disk without
// parent, blocks + (blocks-1)/chunkRatio).
func geometry(info Info) (blocks, ratio, entries uint64) {
	bs := uint64(info.BlockSize)
	blocks = (uint64(info.VirtualSize) + bs - 1) / bs
	ratio = sectorsPerChunk * uint64(info.LogicalSectorSize) / bs
	if blocks > 0 {
		entries = blocks + (blocks-1)/ratio
	}
	return blocks, ratio, entries
}

func validBlockSize(bs uint32) bool {
	return bs >= minBlockSize && bs <= maxBlockSize && bs&(bs-1) == 0
}

func (s *batScan) run(fn func(Extent) error) error {
	i := s.info
	if err := CheckReplayed(i); err != nil {
		return err
	}
	if !validBlockSize(i.BlockSize) || (i.LogicalSectorSize != 512 && i.LogicalSectorSize != 4096) ||
		i.VirtualSize < 0 || i.VirtualSize > maxVirtualSize || i.BATOffset < headerSectionSize {
		return fmt.Errorf("vhdx %s: ScanExtents needs the Info Parse returned for the file, not BlockSize %d, "+
			"LogicalSectorSize %d, VirtualSize %d, BATOffset %d", i.Path, i.BlockSize, i.LogicalSectorSize, i.VirtualSize, i.BATOffset)
	}
	if i.HasParent {
		return &FormatError{Path: i.Path, Field: "File Parameters item", Offset: -1, Err: ErrUnsupported,
			Detail: "HasParent is set: a differencing disk, whose blocks not present here are its parent's, so its own BAT " +
				"does not say where its data is; qemu, which serves VHDX disks to asr, does not open differencing VHDX either",
			hint: "on the Hyper-V host, merge it into its parent (Merge-VHD) or copy the chain into a standalone disk " +
				"(Convert-VHD -VHDType Dynamic), and protect that disk"}
	}
	blocks, ratio, entries := geometry(i)
	if entries > uint64(i.BATLength)/batEntrySize {
		return formatErr(i.Path, "BAT region", int64(i.BATOffset), ErrCorrupt,
			"%d bytes hold %d entries; the %d-byte disk in %d-byte blocks needs %d (%d payload blocks, a sector bitmap entry after every %d)",
			i.BATLength, uint64(i.BATLength)/batEntrySize, i.VirtualSize, i.BlockSize, entries, blocks, ratio)
	}
	bs, vsize := uint64(i.BlockSize), uint64(i.VirtualSize)
	var cur Extent
	for b := uint64(0); b < blocks; b++ {
		idx := b + b/ratio
		e, err := s.entry(idx, entries)
		if err != nil {
			return err
		}
		switch e & batStateMask {
		case blockNotPresent, blockUndefined, blockZero, blockUnmapped, blockUnmappedV095:
			continue
		case blockFullyPresent, blockPartiallyPresent:
		default:
			return s.entryErr(idx, b, e, "is not a state [MS-VHDX] defines (qemu fails reads of the block)")
		}
		start := b * bs
		n := min(bs, vsize-start)
		if err := s.checkBlock(idx, b, e, n); err != nil {
			return err
		}
		if cur.Len > 0 && uint64(cur.End()) == start {
			cur.Len += int64(n)
			continue
		}
		if cur.Len > 0 {
			if err := fn(cur); err != nil {
				return err
			}
		}
		cur = Extent{Off: int64(start), Len: int64(n)}
	}
	if cur.Len > 0 {
		return fn(cur)
	}
	return nil
}

// entry returns BAT entry idx of the total, reading the BAT in chunks.
func (s *batScan) entry(idx, total uint64) (uint64, error) {
	if idx < s.lo || idx >= s.hi {
		if s.buf == nil {
			s.buf = make([]byte, max(1, min(uint64(batChunk)/batEntrySize, total))*batEntrySize)
		}
		n := min(uint64(len(s.buf))/batEntrySize, total-idx)
		if err := s.p.readInto(s.buf[:n*batEntrySize], int64(s.info.BATOffset+idx*batEntrySize), "BAT"); err != nil {
			return 0, err
		}
		s.lo, s.hi = idx, idx+n
	}
	return binary.LittleEndian.Uint64(s.buf[(idx-s.lo)*batEntrySize:]), nil
}

// checkBlock checks that the n bytes of present block b lie inside the
// file, past the header section, and clear of the log, BAT and metadata
// regions.
func (s *batScan) checkBlock(idx, b, e, n uint64) error {
	off := e & batOffsetMask
	if off < headerSectionSize {
		return s.entryErr(idx, b, e, "lies in the 1 MiB header section")
	}
	inside := func() bool { return off <= uint64(s.p.size) && n <= uint64(s.p.size)-off }
	if !inside() && s.grow != nil {
		size, err := s.grow()
		if err != nil {
			return err
		}
		s.p.size = max(s.p.size, size)
	}
	if !inside() {
		return s.entryErr(idx, b, e, fmt.Sprintf("ends past the end of the %d-byte file (cut short?)", s.p.size))
	}
	i := s.info
	blk := span{off: off, length: n}
	for _, r := range []span{{"log", i.LogOffset, uint64(i.LogLength)}, {"BAT region", i.BATOffset, uint64(i.BATLength)},
		{"metadata region", i.MetadataOffset, uint64(i.MetadataLength)}} {
		if blk.overlaps(r) {
			return s.entryErr(idx, b, e, fmt.Sprintf("overlaps the %s (%d bytes at offset %d)", r.name, r.length, r.off))
		}
	}
	return nil
}

func (s *batScan) entryErr(idx, b, e uint64, what string) error {
	bs := uint64(s.info.BlockSize)
	return formatErr(s.info.Path, fmt.Sprintf("BAT entry %d (payload block %d)", idx, b),
		int64(s.info.BATOffset+idx*batEntrySize), ErrCorrupt,
		"entry 0x%016x: %s for virtual bytes %d to %d at file offset %d %s",
		e, stateNames[e&batStateMask], b*bs, min(b*bs+bs, uint64(s.info.VirtualSize)), e&batOffsetMask, what)
}
