package azblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/internal/footer"
)

// ResizeDisk grows the page blob in four steps, the asrsize metadata last:
//
//  1. Resize the blob to the new size plus the footer (Azure reads the new
//     pages as zeros);
//  2. write the new footer at the new end (same unique id and time stamp,
//     new sizes and checksum);
//  3. clear the pages from the old size up to the old end of the blob: the
//     old footer, and whatever an interrupted earlier resize left there;
//  4. set asrsize to the new size: the commit.
//
// Until 4 the disk has its old size (statSize accepts a blob longer than
// its asrsize), so a crash leaves the old size or the new, the bytes below
// the old size untouched, and the retried call redoes the steps, each
// idempotent. The same size checks the footer and writes it when it does
// not fit. Blob snapshots keep their own length and metadata, hence size.
// Two concurrent resizes of one disk to different sizes are not ordered.
func (t *Target) ResizeDisk(ctx context.Context, disk string, size int64) error {
	if err := checkDisk(disk); err != nil {
		return err
	}
	if size <= 0 || size%target.SizeUnit != 0 || size+footerSize > maxBlobSize {
		return fmt.Errorf("azblob: resize disk %q: size %d must be a positive multiple of %d up to %d: %w",
			disk, size, target.SizeUnit, int64(maxBlobSize-target.SizeUnit), target.ErrInvalid)
	}
	pb := t.pageBlob(disk)
	what := fmt.Sprintf("resize disk %q to %d bytes (%s)", disk, size, t.where(t.diskBlob(disk)))
	props, err := pb.GetProperties(ctx, nil)
	if err != nil {
		err = t.fail(err, what)
		if errors.Is(err, target.ErrNotFound) {
			t.forget(disk)
		}
		return err
	}
	old, err := t.blobSize(disk, props.Metadata, props.ContentLength)
	if err != nil {
		return err
	}
	if size < old {
		return fmt.Errorf("azblob: %s: the disk has %d bytes and a replica never shrinks (recreate the disk to make it smaller): %w", what, old, target.ErrInvalid)
	}
	end := *props.ContentLength - footerSize // where the blob's last footer is
	ft, err := t.lastFooter(ctx, pb, old, end)
	if err != nil {
		return t.fail(err, what+": read the VHD footer")
	}
	if size == old && end == old && footer.Fits(ft, size) {
		t.setSize(disk, size)
		return nil
	}
	if end != size {
		if _, err := pb.Resize(ctx, size+footerSize, nil); err != nil {
			return t.fail(err, what)
		}
	}
	if err := t.putPages(ctx, pb, size, footer.For(ft, size)); err != nil {
		return t.fail(err, what+": write the VHD footer")
	}
	if size == old {
		t.setSize(disk, size)
		return nil
	}
	if _, err := pb.ClearPages(ctx, blob.HTTPRange{Offset: old, Count: min(end+footerSize, size) - old}, nil); err != nil {
		return t.fail(err, what+": clear the old VHD footer")
	}
	meta := map[string]*string{}
	for k, v := range props.Metadata {
		if !strings.EqualFold(k, metaSize) {
			meta[k] = v
		}
	}
	meta[metaSize] = to.Ptr(strconv.FormatInt(size, 10))
	if _, err := pb.BlobClient().SetMetadata(ctx, meta, nil); err != nil {
		return t.fail(err, what+": record the new size in the "+metaSize+" metadata")
	}
	t.setSize(disk, size)
	return nil
}

// lastFooter reads the footer a resize carries the disk's identity on
// from: the one at the old size, or, when an interrupted resize already
// cleared that, the one at the blob's end. Zeros when neither is a footer.
func (t *Target) lastFooter(ctx context.Context, pb *pageblob.Client, old, end int64) ([]byte, error) {
	ft := make([]byte, footerSize)
	for _, off := range []int64{old, end} {
		if err := t.read(ctx, pb.BlobClient(), ft, off); err != nil {
			return nil, err
		}
		if bytes.HasPrefix(ft, []byte("conectix")) || off == end {
			break
		}
	}
	return ft, nil
}

// snapSize returns the virtual size of a disk's blob snapshot: the asrsize
// it was taken with, which a later resize of the disk leaves alone. A
// snapshot never changes, so its size is cached for good.
func (t *Target) snapSize(ctx context.Context, disk, ts string) (int64, error) {
	key := disk + "\x00" + ts
	t.mu.Lock()
	size, ok := t.snapSizes[key]
	t.mu.Unlock()
	if ok {
		return size, nil
	}
	what := fmt.Sprintf("size of snapshot %s of disk %q (%s)", ts, disk, t.where(t.diskBlob(disk)))
	c, err := t.pageBlob(disk).BlobClient().WithSnapshot(ts)
	if err != nil {
		return 0, t.fail(err, what)
	}
	props, err := c.GetProperties(ctx, nil)
	if err != nil {
		return 0, t.fail(err, what)
	}
	if size, err = t.blobSize(disk, props.Metadata, props.ContentLength); err != nil {
		return 0, err
	}
	t.mu.Lock()
	t.snapSizes[key] = size
	t.mu.Unlock()
	return size, nil
}

// Local is false: every read of a disk is a download, billed as egress and
// slowed by the WAN.
func (t *Target) Local() bool { return false }
