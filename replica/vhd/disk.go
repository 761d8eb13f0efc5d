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
	// dynamic file cut short). Open and OpenWritable refuse such a disk
	// with tailErr; Inspect reads it and reports tailErr.
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

// Open is OpenAs(path, FormatAuto).
func Open(path string) (*Disk, error) { return OpenAs(path, FormatAuto) }

// OpenWritable is OpenWritableAs(path, FormatAuto).
func OpenWritable(path string) (*Disk, error) { return OpenWritableAs(path, FormatAuto) }

// OpenAs opens a VHD or raw image read-only, deciding the format as doc.go
// says (f names it, or FormatAuto decides by content and name). A file that
// is not what it must be is refused with a *FormatError. A differencing
// disk opens its parent chain too.
func OpenAs(path string, f Format) (*Disk, error) {
	return openDisk(path, openMode{format: f}, nil, nil)
}

// OpenWritableAs is OpenAs for reading and writing; the parents of a
// differencing disk stay read-only.
func OpenWritableAs(path string, f Format) (*Disk, error) {
	return openDisk(path, openMode{format: f, writable: true}, nil, nil)
}

// openMode says how openDisk opens a file. inspect keeps a dynamic disk
// whose tail footer is missing open (d.tailErr set), so Inspect can report
// it; otherwise such a disk is refused with tailErr.
type openMode struct {
	format   Format
	writable bool
	inspect  bool
}

// openDisk opens path; chain holds the files of the differencing disks
// whose chain led here, so a locator loop is caught.
func openDisk(path string, m openMode, chain []os.FileInfo, info *Info) (*Disk, error) {
	var err error
	if m.format, err = ParseFormat(string(m.format)); err != nil {
		return nil, fmt.Errorf("vhd %s: %w", path, err)
	}
	f, st, err := openFile(path, m.writable)
	if err != nil {
		return nil, err
	}
	d := &Disk{path: path, f: f, writable: m.writable}
	if err = d.load(st, m, chain, info); err == nil && !m.inspect {
		err = d.tailErr // reported after any error further in, as Inspect does
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// load detects the format and reads the metadata, filling info (if not
// nil) as it goes so Inspect can report what it read before a failure.
func (d *Disk) load(st os.FileInfo, m openMode, chain []os.FileInfo, info *Info) error {
	fileSize := st.Size()
	if info != nil {
		info.FileSize = fileSize
	}
	buf, tailless, err := d.detect(fileSize, m.format)
	if err != nil {
		return err
	}
	if buf == nil {
		d.typ, d.size, d.footerOff = TypeRaw, fileSize, -1
		return d.fillInfo(info)
	}
	footerAt := fileSize - footerSize
	if tailless {
		footerAt = 0
	}
	d.ft, err = parseFooter(buf, d.path, footerAt)
	d.fillFooterInfo(info)
	if err != nil {
		if m.format == FormatAuto && hasExt(d.path, ".raw", ".img") {
			return fmt.Errorf("%w (if the whole file is the disk, pass --format raw)", err)
		}
		return err
	}
	d.size = int64(d.ft.curSize)
	d.footerOff = footerAt
	if tailless {
		d.tailMissing, d.footerOff = true, fileSize
		d.tailErr = formatErr(d.path, "footer", fileSize-footerSize, 0, ErrTruncated,
			"no footer at the end of the file, only the copy at offset 0")
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
			if err := d.openParent(append(chain, st), info); err != nil {
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
