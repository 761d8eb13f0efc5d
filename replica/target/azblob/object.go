package azblob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/asr-project/asr/replica/target"
)

// maxObject bounds what GetObject reads into memory: objects are
// manifests, points and checksum maps, never disk data.
const maxObject = 256 << 20

func (t *Target) PutObject(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if len(data) > maxObject {
		return fmt.Errorf("azblob: put object %q: %d bytes is over the %d-byte limit for objects: %w", key, len(data), maxObject, target.ErrInvalid)
	}
	// One Put Blob replaces the blob atomically: readers see old or new.
	bb := t.cont.NewBlockBlobClient(t.objectBlob(key))
	if _, err := bb.Upload(ctx, nopCloser{bytes.NewReader(data)}, nil); err != nil {
		return t.fail(err, fmt.Sprintf("put object %q (%s)", key, t.where(t.objectBlob(key))))
	}
	return nil
}

func (t *Target) GetObject(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("get object %q (%s)", key, t.where(t.objectBlob(key)))
	resp, err := t.cont.NewBlobClient(t.objectBlob(key)).DownloadStream(ctx, nil)
	if err != nil {
		return nil, t.fail(err, what)
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	defer body.Close()
	if resp.ContentLength != nil && *resp.ContentLength > maxObject {
		return nil, fmt.Errorf("azblob: %s: %d bytes is over the %d-byte limit for objects: %w", what, *resp.ContentLength, maxObject, target.ErrInvalid)
	}
	data, err := io.ReadAll(io.LimitReader(body, maxObject+1))
	if err != nil {
		return nil, t.fail(err, what)
	}
	if len(data) > maxObject {
		return nil, fmt.Errorf("azblob: %s: over the %d-byte limit for objects: %w", what, maxObject, target.ErrInvalid)
	}
	if resp.ContentLength != nil && int64(len(data)) != *resp.ContentLength {
		return nil, fmt.Errorf("azblob: %s: got %d of %d bytes; retry: %w", what, len(data), *resp.ContentLength, target.ErrUnavailable)
	}
	return data, nil
}

func (t *Target) ListObjects(ctx context.Context, prefix string) ([]string, error) {
	if err := checkKeyChars(prefix); err != nil {
		return nil, err
	}
	base := t.objectBlob("")
	full := base + prefix
	pager := t.cont.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &full})
	keys := []string{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, t.fail(err, fmt.Sprintf("list objects under %q (%s)", prefix, t.where(full)))
		}
		if page.Segment == nil {
			continue
		}
		for _, b := range page.Segment.BlobItems {
			if b != nil && b.Name != nil && strings.HasPrefix(*b.Name, full) {
				keys = append(keys, strings.TrimPrefix(*b.Name, base))
			}
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func (t *Target) DeleteObject(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := t.cont.NewBlobClient(t.objectBlob(key)).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return t.fail(err, fmt.Sprintf("delete object %q (%s)", key, t.where(t.objectBlob(key))))
	}
	return nil
}
