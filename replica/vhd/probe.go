package vhd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Format is the operator's choice of how to read a file (asr's --format).
type Format string

const (
	FormatAuto Format = ""    // decide by content and name, see doc.go
	FormatVHD  Format = "vhd" // must be a valid VHD
	FormatRaw  Format = "raw" // the whole file is the disk, whatever it holds
)

// ParseFormat reads a --format value: "", "auto", "vhd" or "raw".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return FormatAuto, nil
	case "vhd":
		return FormatVHD, nil
	case "raw":
		return FormatRaw, nil
	}
	return "", fmt.Errorf("disk format %q: %w: want auto, vhd or raw", s, ErrUnknownFormat)
}

// openFile opens path and makes sure it is a regular file. Stat refuses
// FIFOs, sockets, devices and directories before open; O_NONBLOCK keeps
// open from waiting on a FIFO swapped in after the stat, and fstat catches
// that swap.
func openFile(path string, writable bool) (*os.File, os.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("vhd %s: open: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, nil, notImage(path, st.Mode())
	}
	flag := os.O_RDONLY | unix.O_NONBLOCK
	if writable {
		flag = os.O_RDWR | unix.O_NONBLOCK
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("vhd %s: open: %w", path, err)
	}
	if st, err = f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("vhd %s: stat: %w", path, err)
		}
		return nil, nil, notImage(path, st.Mode())
	}
	return f, st, nil
}

func notImage(path string, m os.FileMode) error {
	kind := "an irregular file"
	switch {
	case m&os.ModeNamedPipe != 0:
		kind = "a FIFO"
	case m&os.ModeSocket != 0:
		kind = "a socket"
	case m&os.ModeCharDevice != 0:
		kind = "a character device"
	case m&os.ModeDevice != 0:
		kind = "a block device"
	case m.IsDir():
		kind = "a directory"
	}
	return formatErr(path, "file type", -1, 0, ErrNotImage, "%s (mode %v), not a regular file", kind, m)
}

// detect applies the rules of doc.go to a regular file of size bytes. It
// returns the footer to parse and whether it is the copy at offset 0 (the
// tail footer is missing), or no footer for a raw image.
func (d *Disk) detect(size int64, f Format) (ft []byte, tailless bool, err error) {
	if f == FormatRaw {
		return nil, false, d.checkRawSize(size)
	}
	head, tail := make([]byte, footerSize), make([]byte, footerSize)
	n, _ := d.f.ReadAt(head, 0) // short or failed: sniffed as far as it got
	head = head[:n]
	if size >= footerSize {
		if err := d.pread(tail, size-footerSize, "footer"); err != nil {
			return nil, false, err
		}
		// A "conectix" tail makes a VHD, whatever the name: parseFooter
		// then names the first bad field.
		if string(tail[:8]) == footerCookie {
			return tail, false, nil
		}
	}
	if n == footerSize {
		if c, err := parseFooter(head, d.path, 0); err == nil && c.diskType != diskFixed {
			return head, true, nil
		}
	}
	if name, where := foreign(head); name != "" {
		return nil, false, formatErr(d.path, "format", -1, 0, ErrForeign, "%s (%s), not VHD or raw", name, where)
	}
	switch {
	case f == FormatVHD || hasExt(d.path, ".vhd", ".avhd"):
		return nil, false, d.noFooter(size, tail)
	case hasExt(d.path, ".raw", ".img"):
		return nil, false, d.checkRawSize(size)
	}
	return nil, false, formatErr(d.path, "format", -1, 0, ErrUnknownFormat,
		"can't tell the format of %s: no valid VHD footer, and the name does not end .vhd, .avhd, .raw or .img", d.path)
}

func hasExt(path string, exts ...string) bool {
	e := strings.ToLower(filepath.Ext(path))
	for _, x := range exts {
		if e == x {
			return true
		}
	}
	return false
}

// noFooter explains why a file that must be a VHD is not one.
func (d *Disk) noFooter(size int64, tail []byte) error {
	if size < footerSize {
		return formatErr(d.path, "footer", 0, 0, ErrTruncated,
			"the file's %d bytes cannot hold a %d-byte footer", size, footerSize)
	}
	detail := fmt.Sprintf("want %q, have %q, and no footer copy at offset 0", footerCookie, printable(tail[:8]))
	if size%sectorSize != 0 {
		return formatErr(d.path, "footer cookie", size-footerSize, 0, ErrTruncated,
			"%s; the file size %d is not a multiple of 512 (cut short?)", detail, size)
	}
	return formatErr(d.path, "footer cookie", size-footerSize, 0, ErrBadCookie, "%s", detail)
}

// checkRawSize: a raw disk is whole sectors, and at least one.
func (d *Disk) checkRawSize(size int64) error {
	if size <= 0 || size%sectorSize != 0 {
		return formatErr(d.path, "raw image size", -1, 0, ErrSizeMismatch,
			"have %d bytes, want a non-zero multiple of 512", size)
	}
	return nil
}

// foreign names a known image format other than VHD from the file's first
// bytes, and the signature that told it; "" if none matched.
func foreign(head []byte) (name, where string) {
	at0 := func(magic string) bool { return bytes.HasPrefix(head, []byte(magic)) }
	switch {
	case at0("vhdxfile"):
		return "VHDX image", `"vhdxfile" at offset 0`
	case at0("QFI\xfb"):
		return "qcow2 image", `"QFI\xfb" at offset 0`
	case at0("KDMV"):
		return "VMDK image", `"KDMV" at offset 0`
	case at0("# Disk DescriptorFile"):
		return "VMDK descriptor", `"# Disk DescriptorFile" at offset 0`
	case at0("QED\x00"):
		return "QED image", `"QED\x00" at offset 0`
	case at0("<<< ") && len(head) >= 0x44 && binary.LittleEndian.Uint32(head[0x40:]) == 0xbeda107f:
		return "VDI image", `"<<< " at offset 0 and signature 0xbeda107f at offset 64`
	}
	return "", ""
}
