package azblob

import (
	"bytes"
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"golang.org/x/sync/errgroup"

	"github.com/asr-project/asr/replica/target"
)

func (t *Target) WritePages(ctx context.Context, disk string, off int64, p []byte) error {
	if err := checkDisk(disk); err != nil {
		return err
	}
	n := int64(len(p))
	if off < 0 || off%target.PageSize != 0 || n%target.PageSize != 0 || n > target.MaxWrite {
		return fmt.Errorf("azblob: write %d bytes at %d to disk %q: offset and length must be multiples of %d and length at most %d: %w",
			n, off, disk, target.PageSize, target.MaxWrite, target.ErrInvalid)
	}
	size, err := t.sizeFor(ctx, disk, off+n)
	if err != nil {
		return err
	}
	if off > size-n {
		return fmt.Errorf("azblob: write %d bytes at %d to disk %q: past its end %d: %w", n, off, disk, size, target.ErrInvalid)
	}
	pb := t.pageBlob(disk)
	for _, r := range plan(p) {
		what := fmt.Sprintf("write pages [%d, %d) of disk %q (%s)", off+r.off, off+r.off+r.n, disk, t.where(t.diskBlob(disk)))
		if r.zero {
			_, err = pb.ClearPages(ctx, blob.HTTPRange{Offset: off + r.off, Count: r.n}, nil)
		} else {
			err = t.putPages(ctx, pb, off+r.off, p[r.off:r.off+r.n])
		}
		if err != nil {
			if bloberror.HasCode(err, bloberror.BlobNotFound) {
				t.forget(disk)
			}
			return t.fail(err, what)
		}
	}
	return nil
}

func (t *Target) putPages(ctx context.Context, pb *pageblob.Client, off int64, p []byte) error {
	_, err := pb.UploadPages(ctx, nopCloser{bytes.NewReader(p)}, blob.HTTPRange{Offset: off, Count: int64(len(p))}, nil)
	return err
}

// nopCloser keeps Seek, which the SDK's retry policy needs to resend a body.
type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// zeroRunMin is the shortest run of zero pages inside a write that is sent
// as Clear Pages instead of data: it keeps blobs sparse without turning one
// write into many small requests. An all-zero write is always cleared.
const zeroRunMin = 256 << 10

var zeroPage [target.PageSize]byte

type run struct {
	off, n int64
	zero   bool
}

// plan splits a write into runs to upload and zero runs to clear.
func plan(p []byte) []run {
	var runs []run
	n := int64(len(p))
	var start, i int64
	for i < n {
		if !bytes.Equal(p[i:i+target.PageSize], zeroPage[:]) {
			i += target.PageSize
			continue
		}
		j := i
		for j < n && bytes.Equal(p[j:j+target.PageSize], zeroPage[:]) {
			j += target.PageSize
		}
		if j-i >= zeroRunMin || (i == 0 && j == n) {
			if i > start {
				runs = append(runs, run{off: start, n: i - start})
			}
			runs = append(runs, run{off: i, n: j - i, zero: true})
			start = j
		}
		i = j
	}
	if start < n {
		runs = append(runs, run{off: start, n: n - start})
	}
	return runs
}

// batchRequests bounds a batch's page writes in flight. A standard page
// blob is documented to take up to 60 MiB/s; eight 4 MiB writes in flight
// fill that over a WAN round trip of up to about half a second, and more
// would only queue at the blob.
const batchRequests = 8

// WriteBatch sends the writes as concurrent Put Page requests, at most
// batchRequests at a time. Each is durable when Azure acknowledges it.
func (t *Target) WriteBatch(ctx context.Context, disk string, ws []target.Write) error {
	if err := checkDisk(disk); err != nil {
		return err
	}
	var end int64
	for _, w := range ws {
		end = max(end, w.Off+int64(len(w.P)))
	}
	size, err := t.sizeFor(ctx, disk, end)
	if err != nil {
		return err
	}
	if err := target.CheckBatch(ws, size); err != nil {
		return fmt.Errorf("azblob: disk %q: %w", disk, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(batchRequests)
	for _, w := range ws {
		g.Go(func() error { return t.WritePages(ctx, disk, w.Off, w.P) })
	}
	return g.Wait()
}
