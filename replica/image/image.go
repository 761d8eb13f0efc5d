package image

import (
	"errors"
	"fmt"
	"strings"

	"github.com/asr-project/asr/replica/vhd"
)

// Disk is an open disk image.
type Disk interface {
	// Size is the virtual size in bytes.
	Size() int64
	// ReadAt reads virtual bytes; unallocated ranges read as zeros.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes virtual bytes; it fails on a disk opened read-only.
	// The bytes are durable only after Sync.
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes every completed write durable.
	Sync() error
	// Extents lists the ranges that may hold data, sorted and merged;
	// everything else reads as zeros.
	Extents() ([]vhd.Extent, error)
	// Kind is what protection records as the disk's format: a vhd.Type
	// (fixed, dynamic, differencing, raw) or a qemu format name.
	Kind() string
	// Close releases the file (and stops a qemu child). Idempotent.
	Close() error
}

// Format is the operator's --format: "" (auto), vhd, raw, or a qemu
// format name.
type Format string

// Auto decides by content.
const Auto Format = ""

// qemuFormats are the formats served through qemu-nbd.
var qemuFormats = []string{"qcow2", "vhdx", "vmdk", "vdi", "qed", "qcow"}

// ErrUnknownFormat: --format names a format asr does not handle.
var ErrUnknownFormat = errors.New("unknown disk format")

// ParseFormat reads a --format value.
func ParseFormat(s string) (Format, error) {
	s = strings.ToLower(s)
	switch s {
	case "", "auto":
		return Auto, nil
	case "vhd", "vpc", "raw":
		if s == "vpc" {
			s = "vhd"
		}
		return Format(s), nil
	}
	for _, q := range qemuFormats {
		if s == q {
			return Format(s), nil
		}
	}
	return "", fmt.Errorf("disk format %q: %w: want auto, vhd, raw, %s", s, ErrUnknownFormat, strings.Join(qemuFormats, ", "))
}

// Native says asr reads and writes the format itself.
func (f Format) Native() bool { return f == "vhd" || f == "raw" }

// VHD is how package vhd opens a native format; false for the others.
func (f Format) VHD() (vhd.Format, bool) {
	switch f {
	case "vhd":
		return vhd.FormatVHD, true
	case "raw":
		return vhd.FormatRaw, true
	}
	return "", false
}

// FormatOf is the Format to reopen a disk whose Kind was recorded.
func FormatOf(kind string) Format {
	switch vhd.Type(kind) {
	case vhd.TypeRaw:
		return "raw"
	case vhd.TypeFixed, vhd.TypeDynamic, vhd.TypeDifferencing, "":
		return "vhd"
	}
	return Format(kind)
}

// Open opens path read-only.
func Open(path string, f Format) (Disk, error) { return open(path, f, false) }

// OpenWritable opens path for reading and writing.
func OpenWritable(path string, f Format) (Disk, error) { return open(path, f, true) }

func open(path string, f Format, writable bool) (Disk, error) {
	if f == Auto {
		var err error
		if f, err = Probe(path); err != nil {
			return nil, err
		}
	}
	if vf, ok := f.VHD(); ok {
		if writable {
			d, err := vhd.OpenWritableAs(path, vf)
			if err != nil {
				return nil, err
			}
			return nativeDisk{d}, nil
		}
		d, err := vhd.OpenAs(path, vf)
		if err != nil {
			return nil, err
		}
		return nativeDisk{d}, nil
	}
	return openQemu(path, string(f), writable)
}

// nativeDisk is a VHD or raw file read by package vhd.
type nativeDisk struct{ *vhd.Disk }

func (d nativeDisk) Kind() string { return string(d.Type()) }

// SizeOf returns a disk's virtual size without opening it for I/O. For a
// format qemu serves it asks qemu-img with --force-share, so it works
// while a tracker's qemu-nbd holds the image and never changes the file.
func SizeOf(path string, f Format) (int64, error) {
	if f == Auto {
		var err error
		if f, err = Probe(path); err != nil {
			return 0, err
		}
	}
	if !f.Native() {
		return qemuSize(path, string(f))
	}
	d, err := open(path, f, false)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	return d.Size(), nil
}
