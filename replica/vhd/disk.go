package vhd

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// Type is the kind of image a Disk reads.
type Type string

const (
	TypeFixed        Type = "fixed"
	TypeDynamic      Type = "dynamic"
	TypeDifferencing Type = "differencing"
	TypeRaw          Type = "raw" // no footer: the whole file is the disk
)

// Extent is a byte range [Off, Off+Len) of the virtual disk.
type Extent struct{ Off, Len int64 }

// Disk is an open raw image or VHD. ReadAt, WriteAt, Extents and
// AllocatedBytes are safe for concurrent use.
type Disk struct {
	path     string
	f        *os.File
	writable bool
	typ      Type
	size     int64

	ft footer
	// tailMissing: only the copy of the footer at offset 0 was found (a
	// dynamic file cut short). Open reads such a disk, OpenWritable refuses
	// it with tailErr, and Inspect reports tailErr.
	tailMissing bool
	tailErr     error

	// mu guards bat and footerOff: WriteAt on a dynamic or differencing disk
	// allocates blocks and moves the footer, readers must not see it half done.
	mu        sync.RWMutex
	footerOff int64 // where the tail footer is, = end of the data area
	hdr       dynHeader
	bat       []uint32
	bs        int64 // block size
	bmSize    int64 // sector bitmap bytes in front of each block
	parent    *Disk

	seekMu sync.Mutex // SEEK_DATA/SEEK_HOLE move the shared file offset
}

// maxChainDepth bounds a differencing chain so a loop of locators ends.
const maxChainDepth = 16

// Open opens a raw image or a VHD read-only. A VHD is recognised by the
// "conectix" footer in the last 512 bytes, or, for a dynamic or differencing
// disk whose tail was lost, by the copy of the footer at offset 0. A
// differencing disk opens its parent chain too.
func Open(path string) (*Disk, error) { return openDisk(path, false, nil, nil) }

// OpenWritable is Open for reading and writing; the parents of a
// differencing disk stay read-only.
func OpenWritable(path string) (*Disk, error) { return openDisk(path, true, nil, nil) }

// openDisk opens path; children holds the files of the differencing disks
// whose chain led here, so a locator loop is caught.
func openDisk(path string, writable bool, children []os.FileInfo, info *Info) (*Disk, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("vhd %s: open: %w", path, err)
	}
	d := &Disk{path: path, f: f, writable: writable}
	if err := d.load(children, info); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// load detects the format and reads the metadata, filling info (if not
// nil) as it goes so Inspect can report what it read before a failure.
func (d *Disk) load(children []os.FileInfo, info *Info) error {
	st, err := d.f.Stat()
	if err != nil {
		return fmt.Errorf("vhd %s: stat: %w", d.path, err)
	}
	fileSize := st.Size()
	if info != nil {
		info.FileSize = fileSize
		info.Type = TypeRaw
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("vhd %s: not a regular file (mode %v): %w", d.path, st.Mode(), ErrUnsupported)
	}
	d.typ, d.size, d.footerOff = TypeRaw, fileSize, -1

	var buf [footerSize]byte
	if fileSize < footerSize {
		return d.fillInfo(info)
	}
	if err := d.pread(buf[:], fileSize-footerSize, "footer"); err != nil {
		return err
	}
	footerAt := fileSize - footerSize
	if string(buf[:8]) != footerCookie {
		// No tail footer: a dynamic disk still has its copy at offset 0.
		if err := d.pread(buf[:], 0, "footer copy"); err != nil {
			return err
		}
		ft, err := parseFooter(buf[:], d.path, 0)
		if err != nil || ft.diskType == diskFixed {
			return d.fillInfo(info) // raw: a valid footer copy is the only sign of a VHD
		}
		d.tailMissing = true
		footerAt = 0
	}
	d.ft, err = parseFooter(buf[:], d.path, footerAt)
	d.fillFooterInfo(info)
	if err != nil {
		return err
	}
	d.size = int64(d.ft.curSize)
	if d.tailMissing {
		d.footerOff = fileSize
		d.tailErr = formatErr(d.path, "footer", fileSize-footerSize, 0, ErrTruncated,
			"no footer at the end of the file, only the copy at offset 0")
		if d.writable {
			return d.tailErr
		}
	} else {
		d.footerOff = footerAt
	}

	switch d.ft.diskType {
	case diskFixed:
		d.typ = TypeFixed
		if d.size != footerAt {
			return formatErr(d.path, "footer current size", footerAt, fCurSize, ErrSizeMismatch,
				"footer says %d bytes, the file holds %d before its footer", d.size, footerAt)
		}
	case diskDynamic, diskDifferencing:
		d.typ = TypeDynamic
		if d.ft.diskType == diskDifferencing {
			d.typ = TypeDifferencing
		}
		if err := d.loadDynamic(fileSize, info); err != nil {
			return err
		}
		if d.typ == TypeDifferencing {
			if err := d.openParent(append(children, st), info); err != nil {
				return err
			}
		}
	}
	return d.fillInfo(info)
}

// pread reads exactly len(p) bytes at off; a short file is ErrTruncated.
func (d *Disk) pread(p []byte, off int64, what string) error {
	n, err := d.f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == io.EOF || err == nil {
		return formatErr(d.path, what, off, 0, ErrTruncated, "need %d bytes, file has %d there", len(p), n)
	}
	return fmt.Errorf("vhd %s: read %s at offset %d: %w", d.path, what, off, err)
}

// Type returns the image kind.
func (d *Disk) Type() Type { return d.typ }

// Size returns the virtual disk size in bytes.
func (d *Disk) Size() int64 { return d.size }

// Path returns the path the disk was opened with.
func (d *Disk) Path() string { return d.path }

// Sync flushes the file to stable storage.
func (d *Disk) Sync() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("vhd %s: sync: %w", d.path, err)
	}
	return nil
}

// Close closes the file and its parent chain.
func (d *Disk) Close() error {
	var err error
	if d.parent != nil {
		err = d.parent.Close()
		d.parent = nil
	}
	if d.f != nil {
		if cerr := d.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("vhd %s: close: %w", d.path, cerr)
		}
		d.f = nil
	}
	return err
}
