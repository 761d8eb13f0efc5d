package vhd

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns about a file's contents
// is a *FormatError wrapping one of these, so callers test with errors.Is and
// read the file, field and offset from the message.
var (
	// ErrBadCookie: a structure does not start with its magic string
	// ("conectix" for the footer, "cxsparse" for the dynamic header).
	ErrBadCookie = errors.New("bad cookie")
	// ErrBadChecksum: a footer or dynamic header fails its checksum.
	ErrBadChecksum = errors.New("bad checksum")
	// ErrTruncated: the file ends before a structure it declares.
	ErrTruncated = errors.New("file truncated")
	// ErrBATPastEOF: a block allocation table entry points at a block that
	// does not fit inside the file's data area.
	ErrBATPastEOF = errors.New("BAT entry points past end of file")
	// ErrBATOverlap: a BAT entry points at a block that overlaps the footer,
	// the dynamic header or the BAT itself.
	ErrBATOverlap = errors.New("BAT entry overlaps metadata")
	// ErrBlockSize: the dynamic header's block size is not a power of two
	// between MinBlockSize and MaxBlockSize.
	ErrBlockSize = errors.New("bad block size")
	// ErrSizeMismatch: the declared virtual size disagrees with the file
	// (fixed: file is not size+512 bytes; dynamic: BAT too small; raw: the
	// file is empty or not whole 512-byte sectors).
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrUnsupported: a disk type or field value this package does not handle.
	ErrUnsupported = errors.New("unsupported VHD")
	// ErrBrokenChain: a differencing disk's parent is missing, does not
	// match the child's header, or the chain is too deep. Non-recoverable:
	// an operator has to restore the parent.
	ErrBrokenChain = errors.New("broken differencing chain")
	// ErrReadOnly: a write to a disk opened with Open.
	ErrReadOnly = errors.New("disk opened read-only")
	// ErrOutOfRange: an offset or size outside the virtual disk, or a
	// size this package refuses to create.
	ErrOutOfRange = errors.New("offset out of range")

	// ErrNotImage: the path is a FIFO, socket, device, directory or other
	// non-regular file; it is refused before anything is read from it.
	ErrNotImage = errors.New("not a disk image file")
	// ErrForeign: the file is a known image format this package does not
	// read (VHDX, qcow2, VMDK, QED, VDI); the message names it.
	ErrForeign = errors.New("unsupported image format")
	// ErrUnknownFormat: under FormatAuto, a file with no valid VHD footer
	// whose name ends neither .vhd/.avhd nor .raw/.img; also a --format
	// value ParseFormat does not know.
	ErrUnknownFormat = errors.New("unknown image format")
)

// hints tell the operator what to do next, per sentinel.
var hints = map[error]string{
	ErrBadCookie:     "the file is not a VHD or its metadata is damaged; check it with `asr vhd inspect`",
	ErrBadChecksum:   "the metadata is damaged; restore the disk from a replica or a recovery point",
	ErrTruncated:     "the file was cut short (interrupted copy?); copy it again or restore it",
	ErrBATPastEOF:    "the file was cut short or its BAT is damaged; restore the disk",
	ErrBATOverlap:    "the BAT is damaged; restore the disk",
	ErrBlockSize:     "the dynamic header is damaged or from an unsupported tool",
	ErrSizeMismatch:  "the file was resized outside its format; restore it or convert it with qemu-img",
	ErrUnsupported:   "convert the disk to a fixed or dynamic VHD with qemu-img",
	ErrBrokenChain:   "restore the parent disk next to the child, or merge the chain",
	ErrNotImage:      "give the path of a regular disk image file; pipes, sockets, devices and directories are not opened",
	ErrForeign:       "convert it to a VHD, e.g. `qemu-img convert -O vpc -o subformat=dynamic SRC DST.vhd`",
	ErrUnknownFormat: "name it .vhd, .raw or .img, or pass --format raw if the whole file is the disk",
}

// FormatError says which file, field and byte offset failed and why. Base is
// the offset of the structure holding the field and Rel the field's offset
// inside it, so the message reads like "footer checksum at offset 1048576+64".
// Base -1 means the field is about the whole file (its type, size or format)
// and the message gives no offset.
type FormatError struct {
	Path   string
	Field  string
	Base   int64
	Rel    int64
	Detail string // the facts: "want 0x..., have 0x..."
	Err    error  // one of the sentinels
}

func (e *FormatError) Error() string {
	msg := fmt.Sprintf("vhd %s: %s", e.Path, e.Field)
	if e.Base >= 0 {
		msg += fmt.Sprintf(" at offset %d", e.Base)
	}
	if e.Rel != 0 {
		msg += fmt.Sprintf("+%d", e.Rel)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	msg += ": " + e.Err.Error()
	if h, ok := hints[e.Err]; ok {
		msg += " (" + h + ")"
	}
	return msg
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(path, field string, base, rel int64, sentinel error, format string, args ...any) error {
	return &FormatError{Path: path, Field: field, Base: base, Rel: rel,
		Detail: fmt.Sprintf(format, args...), Err: sentinel}
}
