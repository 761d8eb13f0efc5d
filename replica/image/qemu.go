package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/asr-project/asr/replica/qemunbd"
	"github.com/asr-project/asr/replica/tracker/nbd"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/replica/vhdx"
)

// qemuDisk is a disk served by a qemu-nbd child.
type qemuDisk struct {
	path, format string
	srv          *qemunbd.Server
	c            *nbd.Client
}

func openQemu(path, format string, writable bool) (Disk, error) {
	if format == "vhdx" {
		// Refused here with what to do, rather than by qemu as it opens.
		info, err := vhdx.Read(path)
		if err == nil {
			err = vhdx.CheckReplayed(info)
		}
		if err != nil {
			return nil, err
		}
	}
	srv, err := qemunbd.Start(context.Background(), path, qemunbd.Options{Format: format, BesideWriter: !writable})
	if err != nil {
		return nil, fmt.Errorf("open %s disk %s: %w", format, path, err)
	}
	c, err := nbd.Dial(context.Background(), srv.Socket(), srv.Export())
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("open %s disk %s: %w", format, path, err)
	}
	return &qemuDisk{path: path, format: format, srv: srv, c: c}, nil
}

func (d *qemuDisk) Size() int64  { return d.c.Size() }
func (d *qemuDisk) Kind() string { return d.format }

func (d *qemuDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.c.ReadAt(p, off)
	return n, d.why(err)
}

func (d *qemuDisk) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.c.WriteAt(p, off)
	return n, d.why(err)
}

func (d *qemuDisk) Sync() error { return d.why(d.c.Flush()) }

// blockStatusSpan bounds one block-status request; servers may answer
// less, and the client asks again.
const blockStatusSpan = 1 << 30

func (d *qemuDisk) Extents() ([]vhd.Extent, error) {
	if d.format == "vhdx" {
		return vhdxExtents(d.path)
	}
	var out []vhd.Extent
	for off, size := int64(0), d.Size(); off < size; {
		n := min(blockStatusSpan, size-off)
		xs, err := d.c.BlockStatus(off, n)
		if err != nil {
			return nil, d.why(err)
		}
		for _, x := range xs {
			if x.Zero {
				continue
			}
			if k := len(out) - 1; k >= 0 && out[k].Off+out[k].Len == x.Off {
				out[k].Len += x.Len
			} else {
				out = append(out, vhd.Extent{Off: x.Off, Len: x.Len})
			}
		}
		off += n
	}
	return out, nil
}

func (d *qemuDisk) Close() error {
	cerr := d.c.Close()
	if err := d.srv.Stop(); err != nil {
		return fmt.Errorf("stop qemu-nbd for %s: %w", d.path, err)
	}
	return cerr
}

// why adds the child's fate to an error: a dead qemu-nbd is the reason,
// not the broken socket.
func (d *qemuDisk) why(err error) error {
	if err == nil {
		return nil
	}
	select {
	case <-d.srv.Done():
		return fmt.Errorf("%w (qemu-nbd serving %s exited: %v)", err, d.path, d.srv.Err())
	default:
		return err
	}
}

func qemuSize(path, format string) (int64, error) {
	out, err := exec.Command("qemu-img", "info", "--force-share", "--output=json", "-f", format, path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.VirtualSize <= 0 {
		return 0, fmt.Errorf("qemu-img info %s: no virtual size in %q", path, out)
	}
	return info.VirtualSize, nil
}

// Done is closed when the qemu-nbd child exits; Err then says how.
func (d *qemuDisk) Done() <-chan struct{} { return d.srv.Done() }

// Err is how the child ended (nil while it runs or after Close).
func (d *qemuDisk) Err() error { return d.srv.Err() }

// vhdxExtents reads a VHDX's BAT natively: qemu's vhdx driver reports
// every block as data through block status, so its holes would be read.
func vhdxExtents(path string) ([]vhd.Extent, error) {
	xs, err := vhdx.Extents(path)
	if err != nil {
		return nil, err
	}
	out := make([]vhd.Extent, len(xs))
	for i, x := range xs {
		out[i] = vhd.Extent{Off: x.Off, Len: x.Len}
	}
	return out, nil
}
