package azblob

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/asr-project/asr/replica/target"
)

// copier is the part of a blob client a server-side copy needs; tests
// fake it to drive the polling that Azurite (whose copies finish at once)
// never exercises.
type copier interface {
	// StartCopyFromURL starts copying src into this blob.
	StartCopyFromURL(ctx context.Context, src string, o *blob.StartCopyFromURLOptions) (blob.StartCopyFromURLResponse, error)
	// GetProperties reports, among others, the copy's id and status.
	GetProperties(ctx context.Context, o *blob.GetPropertiesOptions) (blob.GetPropertiesResponse, error)
}

func (t *Target) CopyFromSnapshot(ctx context.Context, disk, snapshot, dst string) error {
	if err := checkSnapshot(disk, snapshot); err != nil {
		return err
	}
	if err := checkDisk(dst); err != nil {
		return err
	}
	what := fmt.Sprintf("copy snapshot %q of disk %q to disk %q (%s)", snapshot, disk, dst, t.where(t.diskBlob(dst)))
	dpb := t.pageBlob(dst)
	return t.withSnapshot(ctx, disk, snapshot, func(ts string) error {
		// The snapshot's size, not the disk's: the disk may have grown since.
		size, err := t.snapSize(ctx, disk, ts)
		if err != nil {
			return err
		}
		meta := map[string]*string{metaSize: to.Ptr(strconv.FormatInt(size, 10))}
		var started bool
		if t.clientCopy {
			started, err = t.copyThrough(ctx, disk, ts, dst, size, meta, what)
		} else {
			var src *pageblob.Client
			if src, err = t.pageBlob(disk).WithSnapshot(ts); err != nil {
				return t.fail(err, what)
			}
			started, err = t.copyBlob(ctx, dpb, src.URL(), meta, what)
		}
		if err != nil {
			if started {
				// Leave no half-copied dst behind, so a retry can start afresh.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
				_, _ = dpb.Delete(cctx, nil)
				cancel()
			}
			return err
		}
		got, err := t.statSize(ctx, dst)
		if err != nil {
			return err
		}
		if got != size {
			return fmt.Errorf("azblob: %s: the copy has size %d, want %d; delete it and retry: %w", what, got, size, target.ErrUnavailable)
		}
		// A copy is another disk: give it its own VHD unique id.
		if err := t.putPages(ctx, dpb, size, newFooter(size)); err != nil {
			return t.fail(err, what+": write the VHD footer")
		}
		return nil
	})
}

// copyThrough copies a snapshot's allocated ranges into a new page blob
// through this client, 4 MiB at a time. Used against emulators only: on
// Azure a server-side copy moves no data through the client.
func (t *Target) copyThrough(ctx context.Context, disk, ts, dst string, size int64, meta map[string]*string, what string) (started bool, err error) {
	dpb := t.pageBlob(dst)
	_, err = dpb.Create(ctx, size+footerSize, &pageblob.CreateOptions{Metadata: meta, AccessConditions: ifNoneMatch()})
	if err != nil {
		if alreadyThere(err) {
			return false, fmt.Errorf("azblob: %s: the destination exists; delete it or pick another name: %w", what, target.ErrExists)
		}
		return false, t.fail(err, what)
	}
	spb := t.pageBlob(disk)
	ranges, err := t.ranges(ctx, spb, size, ts, what+": list source ranges")
	if err != nil {
		return true, err
	}
	src, err := spb.BlobClient().WithSnapshot(ts)
	if err != nil {
		return true, t.fail(err, what)
	}
	buf := make([]byte, target.MaxWrite)
	for _, r := range ranges {
		for off := r.Off; off < r.Off+r.Len; off += target.MaxWrite {
			p := buf[:min(target.MaxWrite, r.Off+r.Len-off)]
			if err := t.read(ctx, src, p, off); err != nil {
				return true, t.fail(err, fmt.Sprintf("%s: read [%d, %d)", what, off, off+int64(len(p))))
			}
			for _, w := range plan(p) {
				if w.zero {
					continue // the new blob reads zeros there already
				}
				if err := t.putPages(ctx, dpb, off+w.off, p[w.off:w.off+w.n]); err != nil {
					return true, t.fail(err, fmt.Sprintf("%s: write [%d, %d)", what, off+w.off, off+w.off+w.n))
				}
			}
		}
	}
	return true, nil
}

// copyBlob starts a server-side copy of src into c, which must not exist,
// and waits until it completes, fails or the wait bound passes. started
// says whether c may now hold a partial copy.
func (t *Target) copyBlob(ctx context.Context, c copier, src string, meta map[string]*string, what string) (started bool, err error) {
	resp, err := c.StartCopyFromURL(ctx, src, &blob.StartCopyFromURLOptions{
		Metadata:         meta,
		AccessConditions: ifNoneMatch(),
	})
	if err != nil {
		if alreadyThere(err) {
			return false, fmt.Errorf("azblob: %s: the destination exists; delete it or pick another name: %w", what, target.ErrExists)
		}
		return false, t.fail(err, what)
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.copyTimeout)
	defer cancel()
	status, desc := resp.CopyStatus, ""
	delay := t.opts.copyPollFirst
	for status == nil || *status == blob.CopyStatusTypePending {
		if status == nil && resp.CopyID == nil {
			break // the service copied synchronously and said nothing more
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return true, t.fail(ctx.Err(), fmt.Sprintf("%s: wait for the copy (bound %v)", what, t.opts.copyTimeout))
		case <-timer.C:
		}
		delay = min(2*delay, t.opts.copyPollMax)
		props, err := c.GetProperties(ctx, nil)
		if err != nil {
			return true, t.fail(err, what+": poll the copy")
		}
		if resp.CopyID != nil && props.CopyID != nil && *props.CopyID != *resp.CopyID {
			return false, fmt.Errorf("azblob: %s: another copy (id %s) replaced ours; check for a concurrent writer: %w", what, *props.CopyID, target.ErrExists)
		}
		status = props.CopyStatus
		if props.CopyStatusDescription != nil {
			desc = *props.CopyStatusDescription
		}
		if status == nil {
			return true, fmt.Errorf("azblob: %s: the service reports no copy status; retry: %w", what, target.ErrUnavailable)
		}
	}
	if status != nil && *status != blob.CopyStatusTypeSuccess {
		return true, fmt.Errorf("azblob: %s: status %s %q; retry later: %w: %w", what, *status, scrub(desc, t.secrets), errCopyFailed, target.ErrUnavailable)
	}
	return true, nil
}
