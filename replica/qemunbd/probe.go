package qemunbd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	probeSize  = 2048 // bytes read from the start, as qemu (BLOCK_PROBE_BUF_SIZE)
	footerSize = 512  // a VHD footer
)

// signature is a format Probe recognised and what told it.
type signature struct{ format, where string }

// Probe names the qemu format of the image at path by its content, by
// qemu's probing rules (see the package doc): "qcow2", "qcow", "vhdx",
// "vmdk", "vdi", "qed" or "vpc" (VHD). It never answers raw: a file with
// no known signature is ErrUnknownFormat, and the caller decides raw by
// name or flag. Signatures of two formats are ErrAmbiguous. Only regular
// files and block devices are read; Probe opens path read-only and
// changes nothing.
func Probe(path string) (string, error) {
	f, size, err := openImage(path)
	if err != nil {
		return "", fmt.Errorf("probe the format of %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, probeSize)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("probe the format of %s: read its first %d bytes: %w", path, probeSize, err)
	}
	var tail []byte
	if size >= footerSize {
		tail = make([]byte, footerSize)
		if _, err := f.ReadAt(tail, size-footerSize); err != nil {
			return "", fmt.Errorf("probe the format of %s: read its last %d bytes: %w", path, footerSize, err)
		}
	}
	found := signatures(head[:n], tail)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("probe the format of %s: %w: no qcow2, qcow, VHDX, VMDK, VDI, QED or VHD signature; if it is a raw disk, say so (--format raw)", path, ErrUnknownFormat)
	case 1:
		return found[0].format, nil
	}
	var names []string
	for _, s := range found {
		names = append(names, fmt.Sprintf("%s (%s)", s.format, s.where))
	}
	return "", fmt.Errorf("probe the format of %s: %w: it has the signatures of %s: pass --format with the one it is", path, ErrAmbiguous, strings.Join(names, " and "))
}

// signatures lists the formats whose signatures head (the first bytes of
// a file, at most probeSize) and tail (its last 512 bytes, or nil when it
// is shorter) hold, each format once, in a fixed order.
func signatures(head, tail []byte) []signature {
	var out []signature
	add := func(format, where string) {
		for _, s := range out {
			if s.format == format {
				return
			}
		}
		out = append(out, signature{format, where})
	}
	at0 := func(magic string) bool { return bytes.HasPrefix(head, []byte(magic)) }
	if at0("QFI\xfb") && len(head) >= 8 {
		switch v := binary.BigEndian.Uint32(head[4:]); {
		case v == 1:
			add("qcow", `"QFI\xfb" version 1 at offset 0`)
		case v >= 2:
			add("qcow2", fmt.Sprintf(`"QFI\xfb" version %d at offset 0`, v))
		}
	}
	if at0("vhdxfile") {
		add("vhdx", `"vhdxfile" at offset 0`)
	}
	switch {
	case at0("KDMV"):
		add("vmdk", `"KDMV" at offset 0`)
	case at0("COWD"):
		add("vmdk", `"COWD" at offset 0`)
	case vmdkDescriptor(head):
		add("vmdk", "a VMDK text descriptor")
	}
	if len(head) >= 512 && binary.LittleEndian.Uint32(head[0x40:]) == 0xbeda107f {
		add("vdi", "signature 0xbeda107f at offset 64")
	}
	if len(head) >= 64 && at0("QED\x00") {
		add("qed", `"QED\x00" at offset 0`)
	}
	if at0("conectix") {
		add("vpc", `"conectix" at offset 0`)
	}
	if len(tail) == footerSize && bytes.HasPrefix(tail, []byte("conectix")) {
		add("vpc", `a "conectix" footer in the last 512 bytes`)
	}
	return out
}

// vmdkDescriptor applies qemu's vmdk_probe to text: lines of comments
// ('#') or blanks (spaces), then "version=1", "=2" or "=3" ending the line.
// A file starting "# Disk DescriptorFile" counts too, as package vhd
// already refuses it as VMDK.
func vmdkDescriptor(b []byte) bool {
	if bytes.HasPrefix(b, []byte("# Disk DescriptorFile")) {
		return true
	}
	for p := 0; p < len(b); {
		switch b[p] {
		case '#':
			for p < len(b) && b[p] != '\n' {
				p++
			}
			p++
			continue
		case ' ':
			for p < len(b) && b[p] == ' ' {
				p++
			}
			if p < len(b) && b[p] == '\r' {
				p++
			}
			if p == len(b) || b[p] != '\n' {
				return false
			}
			p++
			continue
		}
		for _, v := range []string{"1", "2", "3"} {
			if bytes.HasPrefix(b[p:], []byte("version="+v+"\n")) || bytes.HasPrefix(b[p:], []byte("version="+v+"\r\n")) {
				return true
			}
		}
		return false
	}
	return false
}

// openImage opens a regular file or block device read-only and returns
// its size. The mode is checked before the open, so a FIFO is never
// opened; O_NONBLOCK and a second check catch one swapped in between.
func openImage(path string) (*os.File, int64, error) {
	if _, err := statImage(path); err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() && (st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0) {
		err = fmt.Errorf("%s is not a disk image: it is %s (mode %v)", path, kind(st.Mode()), st.Mode())
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	size := st.Size()
	if !st.Mode().IsRegular() { // a block device: its size is its end
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("size of block device %s: %w", path, err)
		}
	}
	return f, size, nil
}
