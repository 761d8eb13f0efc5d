package vhd

import (
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"
)

// CreateFixed creates a new sparse fixed VHD of virtual size
// RoundSize(size) (all zeros, occupying almost no space) and returns it
// open for writing. It refuses to replace an existing file.
func CreateFixed(path string, size int64) (*Disk, error) {
	vsize := RoundSize(size)
	if vsize <= 0 || vsize > maxVirtualSize {
		return nil, fmt.Errorf("vhd %s: create fixed disk of %d bytes: want 1 to %d: %w",
			path, size, int64(maxVirtualSize), ErrOutOfRange)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("vhd %s: create: %w", path, err)
	}
	fail := func(err error) (*Disk, error) {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("vhd %s: create: %w", path, err)
	}
	id := uuid.New()
	ft := FixedFooter(vsize, id, time.Now())
	// Writing the footer at vsize extends the file and leaves the data a hole.
	if _, err := f.WriteAt(ft, vsize); err != nil {
		return fail(err)
	}
	d := &Disk{path: path, f: f, writable: true, typ: TypeFixed, size: vsize, footerOff: vsize}
	if d.ft, err = parseFooter(ft, path, vsize); err != nil {
		return fail(err)
	}
	return d, nil
}

func uuidString(id [16]byte) string { return uuid.UUID(id).String() }
