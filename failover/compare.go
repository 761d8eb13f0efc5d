package failover

import (
	"bytes"
	"fmt"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/vhd"
)

// Compare checks that two disk images (VHD of any kind, or raw) hold the
// same virtual bytes. Size differences are allowed only where the larger
// one is zero, as qemu-img compare does (a replica is rounded up to 1 MiB).
func Compare(a, b string) error {
	da, err := vhd.Open(a)
	if err != nil {
		return err
	}
	defer da.Close()
	db, err := vhd.Open(b)
	if err != nil {
		return err
	}
	defer db.Close()
	size := max(da.Size(), db.Size())
	const chunk = 4 << 20
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		if err := readPadded(da, ba[:n], off); err != nil {
			return err
		}
		if err := readPadded(db, bb[:n], off); err != nil {
			return err
		}
		if !bytes.Equal(ba[:n], bb[:n]) {
			i := int64(0)
			for ba[i] == bb[i] {
				i++
			}
			return fmt.Errorf("%s and %s differ at offset %d: %w", a, b, off+i, replica.ErrMismatch)
		}
	}
	return nil
}

// readPadded reads what the disk has at off and zeros past its end.
func readPadded(d *vhd.Disk, p []byte, off int64) error {
	clear(p)
	if off >= d.Size() {
		return nil
	}
	n := min(int64(len(p)), d.Size()-off)
	_, err := d.ReadAt(p[:n], off)
	return err
}
