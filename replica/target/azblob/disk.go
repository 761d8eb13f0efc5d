package azblob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/asr-project/asr/replica/target"
)

// maxBlobSize is Azure's page blob limit (8 TiB), footer included.
const maxBlobSize = 8 << 40

// metaSize is the blob metadata that records a disk's virtual size.
const metaSize = "asrsize"

// ifNoneMatch makes a write fail if the blob already exists.
func ifNoneMatch() *blob.AccessConditions {
	return &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}
}

// alreadyThere reports a conditional create that lost to an existing blob
// (Azure answers 409 BlobAlreadyExists, some emulators 412).
func alreadyThere(err error) bool {
	return bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet, bloberror.TargetConditionNotMet)
}

func (t *Target) CreateDisk(ctx context.Context, disk string, size int64) error {
	if err := checkDisk(disk); err != nil {
		return err
	}
	if size <= 0 || size%target.SizeUnit != 0 || size+footerSize > maxBlobSize {
		return fmt.Errorf("azblob: create disk %q: size %d must be a positive multiple of %d up to %d: %w",
			disk, size, target.SizeUnit, int64(maxBlobSize-target.SizeUnit), target.ErrInvalid)
	}
	pb := t.pageBlob(disk)
	what := fmt.Sprintf("create disk %q (%d bytes) as page blob %s", disk, size, t.where(t.diskBlob(disk)))
	_, err := pb.Create(ctx, size+footerSize, &pageblob.CreateOptions{
		Metadata:         map[string]*string{metaSize: to.Ptr(strconv.FormatInt(size, 10))},
		AccessConditions: ifNoneMatch(),
	})
	switch {
	case err == nil:
		if err := t.putPages(ctx, pb, size, newFooter(size)); err != nil {
			return t.fail(err, what+": write the VHD footer")
		}
		t.setSize(disk, size)
		return nil
	case !alreadyThere(err):
		return t.fail(err, what)
	}
	have, err := t.statSize(ctx, disk)
	if err != nil {
		return err
	}
	if have != size {
		return fmt.Errorf("azblob: %s: the disk exists with size %d; delete it or use that size: %w", what, have, target.ErrExists)
	}
	// A create interrupted before its footer left zeros there: write it now.
	var tail [footerSize]byte
	if err := t.read(ctx, pb.BlobClient(), tail[:], size); err != nil {
		return t.fail(err, what+": read the VHD footer")
	}
	if !bytes.HasPrefix(tail[:], []byte("conectix")) {
		if err := t.putPages(ctx, pb, size, newFooter(size)); err != nil {
			return t.fail(err, what+": write the VHD footer")
		}
	}
	return nil
}

func (t *Target) DiskSize(ctx context.Context, disk string) (int64, error) {
	if err := checkDisk(disk); err != nil {
		return 0, err
	}
	return t.statSize(ctx, disk)
}

// statSize reads a disk's size from its blob and refreshes the cache.
func (t *Target) statSize(ctx context.Context, disk string) (int64, error) {
	props, err := t.pageBlob(disk).GetProperties(ctx, nil)
	if err != nil {
		if sentinel, _ := classify(err); sentinel == target.ErrNotFound {
			t.forget(disk)
		}
		return 0, t.fail(err, fmt.Sprintf("size of disk %q (%s)", disk, t.where(t.diskBlob(disk))))
	}
	size, err := t.blobSize(disk, props.Metadata, props.ContentLength)
	if err != nil {
		return 0, err
	}
	t.setSize(disk, size)
	return size, nil
}

// blobSize reads the virtual size a disk blob, or a snapshot of one,
// records in its asrsize metadata. The blob must hold that many bytes and
// the footer; a longer blob is a disk whose ResizeDisk stopped before its
// last step (setting the metadata), and has the size it had before.
func (t *Target) blobSize(disk string, meta map[string]*string, length *int64) (int64, error) {
	size, err := strconv.ParseInt(metaValue(meta, metaSize), 10, 64)
	if err != nil || size <= 0 || length == nil || *length < size+footerSize {
		return 0, fmt.Errorf("azblob: disk %q: blob %s has no valid %s metadata matching its length; it was not made by asr, delete or rename it: %w: %w",
			disk, t.where(t.diskBlob(disk)), metaSize, errNotAsrDisk, target.ErrInvalid)
	}
	return size, nil
}

// sizeFor is a disk's size for an access that ends at end: the cached size
// when it covers end, else a fresh one, since another Target may have grown
// the disk since this one cached its size (sizes only grow).
func (t *Target) sizeFor(ctx context.Context, disk string, end int64) (int64, error) {
	if s, ok := t.cachedSize(disk); ok && end <= s {
		return s, nil
	}
	return t.statSize(ctx, disk)
}

func (t *Target) ReadAt(ctx context.Context, disk, snapshot string, p []byte, off int64) error {
	if err := checkDisk(disk); err != nil {
		return err
	}
	what := fmt.Sprintf("read [%d, %d) of disk %q", off, off+int64(len(p)), disk)
	outside := func(size int64) error {
		if off < 0 || off > size-int64(len(p)) {
			return fmt.Errorf("azblob: %s: outside its size %d: %w", what, size, target.ErrInvalid)
		}
		return nil
	}
	if snapshot == "" {
		size, err := t.sizeFor(ctx, disk, off+int64(len(p)))
		if err == nil {
			err = outside(size)
		}
		if err != nil || len(p) == 0 {
			return err
		}
		if err := t.read(ctx, t.pageBlob(disk).BlobClient(), p, off); err != nil {
			return t.fail(err, what+" ("+t.where(t.diskBlob(disk))+")")
		}
		return nil
	}
	if err := checkSnapshot(disk, snapshot); err != nil {
		return err
	}
	what += " snapshot " + strconv.Quote(snapshot)
	return t.withSnapshot(ctx, disk, snapshot, func(ts string) error {
		size, err := t.snapSize(ctx, disk, ts)
		if err == nil {
			err = outside(size)
		}
		if err != nil || len(p) == 0 {
			return err
		}
		c, err := t.pageBlob(disk).BlobClient().WithSnapshot(ts)
		if err == nil {
			err = t.read(ctx, c, p, off)
		}
		if err != nil {
			return t.fail(err, what)
		}
		return nil
	})
}

// read fills p from off of a blob, resuming a cut download.
func (t *Target) read(ctx context.Context, c *blob.Client, p []byte, off int64) error {
	resp, err := c.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: int64(len(p))}})
	if err != nil {
		return err
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	defer body.Close()
	if _, err := io.ReadFull(body, p); err != nil {
		return err
	}
	return nil
}

func (t *Target) Ranges(ctx context.Context, disk, snapshot string) ([]target.Extent, error) {
	if err := checkDisk(disk); err != nil {
		return nil, err
	}
	if snapshot == "" {
		// Not the cached size: another Target may have grown the disk.
		size, err := t.statSize(ctx, disk)
		if err != nil {
			return nil, err
		}
		return t.ranges(ctx, t.pageBlob(disk), size, "", fmt.Sprintf("ranges of disk %q", disk))
	}
	if err := checkSnapshot(disk, snapshot); err != nil {
		return nil, err
	}
	var out []target.Extent
	err := t.withSnapshot(ctx, disk, snapshot, func(ts string) error {
		size, err := t.snapSize(ctx, disk, ts)
		if err == nil {
			out, err = t.ranges(ctx, t.pageBlob(disk), size, ts, fmt.Sprintf("ranges of disk %q snapshot %q", disk, snapshot))
		}
		return err
	})
	return out, err
}

// ranges lists a blob's (or snapshot's) page ranges inside the virtual
// size, merged, the footer left out.
func (t *Target) ranges(ctx context.Context, pb *pageblob.Client, size int64, ts, what string) ([]target.Extent, error) {
	var o pageblob.GetPageRangesOptions
	if ts != "" {
		o.Snapshot = &ts
	}
	var out []target.Extent
	pager := pb.NewGetPageRangesPager(&o)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, t.fail(err, what)
		}
		for _, r := range page.PageRange {
			if r == nil || r.Start == nil || r.End == nil {
				continue
			}
			start, end := *r.Start, min(*r.End+1, size)
			if start < end {
				out = append(out, target.Extent{Off: start, Len: end - start})
			}
		}
	}
	return merge(out), nil
}

// merge sorts extents and joins overlapping or touching ones.
func merge(in []target.Extent) []target.Extent {
	sort.Slice(in, func(i, j int) bool { return in[i].Off < in[j].Off })
	var out []target.Extent
	for _, e := range in {
		if k := len(out) - 1; k >= 0 && e.Off <= out[k].Off+out[k].Len {
			out[k].Len = max(out[k].Len, e.Off+e.Len-out[k].Off)
			continue
		}
		out = append(out, e)
	}
	return out
}

func (t *Target) DeleteDisk(ctx context.Context, disk string) error {
	if err := checkDisk(disk); err != nil {
		return err
	}
	// Records first: a crash between the two steps leaves blob snapshots
	// without names (deleted with the blob on retry), never names without
	// a disk that a new disk of the same name would inherit.
	recs, err := t.snapshotRecords(ctx, disk)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := t.deleteRecord(ctx, disk, r.name); err != nil {
			return err
		}
	}
	_, err = t.pageBlob(disk).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)})
	t.forget(disk)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return t.fail(err, fmt.Sprintf("delete disk %q (%s)", disk, t.where(t.diskBlob(disk))))
	}
	return nil
}
