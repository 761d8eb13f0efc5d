package azblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/asr-project/asr/replica/target"
)

// metaSnapshot is the record metadata holding the Azure snapshot timestamp.
const metaSnapshot = "asrsnapshot"

// record is one named snapshot: its name and Azure's timestamp for it.
type record struct{ name, ts string }

// cleanupTimeout bounds best-effort cleanup after a failed call, which runs
// even when the caller's context is done.
const cleanupTimeout = 30 * time.Second

func (t *Target) Snapshot(ctx context.Context, disk, name string) error {
	if err := checkSnapshot(disk, name); err != nil {
		return err
	}
	if _, _, err := t.resolve(ctx, disk, name); err == nil {
		return nil // idempotent: keep the existing snapshot as it was
	} else if !errors.Is(err, target.ErrNotFound) {
		return err
	}
	what := fmt.Sprintf("snapshot disk %q as %q", disk, name)
	pb := t.pageBlob(disk)
	resp, err := pb.CreateSnapshot(ctx, nil)
	if err != nil {
		return t.fail(err, what+" ("+t.where(t.diskBlob(disk))+")")
	}
	if resp.Snapshot == nil || *resp.Snapshot == "" {
		return fmt.Errorf("azblob: %s: the service returned no snapshot timestamp; retry: %w", what, target.ErrUnavailable)
	}
	ts := *resp.Snapshot
	// If-None-Match: * lets exactly one of two racing writers name it.
	_, err = t.snapRecord(disk, name).Upload(ctx, nopCloser{bytes.NewReader([]byte(ts))}, &blockblob.UploadOptions{
		Metadata:         map[string]*string{metaSnapshot: to.Ptr(ts)},
		AccessConditions: ifNoneMatch(),
	})
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		_ = t.dropUnnamed(cctx, disk, ts) // best effort; DeleteDisk removes leftovers
		cancel()
		if alreadyThere(err) {
			return nil // another writer named this snapshot first; keep theirs
		}
		return t.fail(err, what+": record the name at "+t.where(t.snapDir(disk)+name))
	}
	t.cacheSnapshot(disk, name, ts)
	return nil
}

func (t *Target) Snapshots(ctx context.Context, disk string) ([]string, error) {
	if err := checkDisk(disk); err != nil {
		return nil, err
	}
	recs, err := t.snapshotRecords(ctx, disk)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		if _, err := t.statSize(ctx, disk); err != nil {
			return nil, err
		}
	}
	names := make([]string, len(recs))
	for i, r := range recs {
		names[i] = r.name
	}
	return names, nil
}

// snapshotRecords lists a disk's records, oldest first. Azure snapshot
// timestamps (RFC 3339 with 7 fractional digits) sort as strings.
func (t *Target) snapshotRecords(ctx context.Context, disk string) ([]record, error) {
	dir := t.snapDir(disk)
	pager := t.cont.NewListBlobsHierarchyPager("/", &container.ListBlobsHierarchyOptions{
		Prefix:  &dir,
		Include: container.ListBlobsInclude{Metadata: true},
	})
	var recs []record
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, t.fail(err, fmt.Sprintf("list snapshots of disk %q under %s", disk, t.where(dir)))
		}
		if page.Segment == nil {
			continue
		}
		for _, b := range page.Segment.BlobItems {
			if b == nil || b.Name == nil || !strings.HasPrefix(*b.Name, dir) {
				continue
			}
			recs = append(recs, record{name: strings.TrimPrefix(*b.Name, dir), ts: metaValue(b.Metadata, metaSnapshot)})
		}
	}
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].ts != recs[j].ts {
			return recs[i].ts < recs[j].ts
		}
		return recs[i].name < recs[j].name
	})
	return recs, nil
}

func metaValue(m map[string]*string, key string) string {
	for k, v := range m {
		if strings.EqualFold(k, key) && v != nil {
			return *v
		}
	}
	return ""
}

// resolve finds a named snapshot's timestamp, from the cache when it can.
func (t *Target) resolve(ctx context.Context, disk, name string) (ts string, cached bool, err error) {
	if ts, ok := t.cachedSnapshot(disk, name); ok {
		return ts, true, nil
	}
	props, err := t.snapRecord(disk, name).GetProperties(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return "", false, fmt.Errorf("azblob: snapshot %q of disk %q: no record at %s: %w", name, disk, t.where(t.snapDir(disk)+name), target.ErrNotFound)
		}
		return "", false, t.fail(err, fmt.Sprintf("look up snapshot %q of disk %q", name, disk))
	}
	ts = metaValue(props.Metadata, metaSnapshot)
	if ts == "" {
		return "", false, fmt.Errorf("azblob: snapshot %q of disk %q: record %s has no %s metadata; delete the record: %w",
			name, disk, t.where(t.snapDir(disk)+name), metaSnapshot, target.ErrInvalid)
	}
	t.cacheSnapshot(disk, name, ts)
	return ts, false, nil
}

// withSnapshot runs fn with a snapshot's timestamp. A not-found through a
// cached timestamp (another process deleted or renamed it) is retried once
// with a fresh lookup.
func (t *Target) withSnapshot(ctx context.Context, disk, name string, fn func(ts string) error) error {
	for attempt := 0; ; attempt++ {
		ts, cached, err := t.resolve(ctx, disk, name)
		if err != nil {
			return err
		}
		err = fn(ts)
		if err != nil && cached && attempt == 0 && errors.Is(err, target.ErrNotFound) {
			t.uncacheSnapshot(disk, name)
			continue
		}
		return err
	}
}

func (t *Target) DeleteSnapshot(ctx context.Context, disk, name string) error {
	if err := checkSnapshot(disk, name); err != nil {
		return err
	}
	t.uncacheSnapshot(disk, name)
	ts, _, err := t.resolve(ctx, disk, name)
	if errors.Is(err, target.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// The name goes first: a crash between the two steps leaves an unnamed
	// blob snapshot (removed with the disk), never a name without data.
	if err := t.deleteRecord(ctx, disk, name); err != nil {
		return err
	}
	return t.dropUnnamed(ctx, disk, ts)
}

// dropUnnamed deletes a blob snapshot unless a record still names it.
// Azure gives every snapshot of a blob its own timestamp, but Azurite's
// have millisecond resolution: two snapshots taken within one millisecond
// are one, possibly under two names, and deleting it for one name (or for
// the loser of a naming race) would empty the other.
func (t *Target) dropUnnamed(ctx context.Context, disk, ts string) error {
	recs, err := t.snapshotRecords(ctx, disk)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.ts == ts {
			return nil
		}
	}
	if err := t.deleteBlobSnapshot(ctx, disk, ts); err != nil {
		return t.fail(err, fmt.Sprintf("delete blob snapshot %s of disk %q", ts, disk))
	}
	return nil
}

func (t *Target) deleteRecord(ctx context.Context, disk, name string) error {
	t.uncacheSnapshot(disk, name)
	_, err := t.snapRecord(disk, name).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return t.fail(err, fmt.Sprintf("delete the record of snapshot %q of disk %q", name, disk))
	}
	return nil
}

// deleteBlobSnapshot deletes one Azure snapshot; a missing one is fine.
func (t *Target) deleteBlobSnapshot(ctx context.Context, disk, ts string) error {
	c, err := t.pageBlob(disk).BlobClient().WithSnapshot(ts)
	if err != nil {
		return err
	}
	_, err = c.Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return err
	}
	return nil
}

func (t *Target) cachedSnapshot(disk, name string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.snaps[disk+"\x00"+name]
	return ts, ok
}

func (t *Target) cacheSnapshot(disk, name, ts string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.snaps[disk+"\x00"+name] = ts
}

func (t *Target) uncacheSnapshot(disk, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.snaps, disk+"\x00"+name)
}
