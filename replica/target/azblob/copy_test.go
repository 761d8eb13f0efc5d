package azblob

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/asr-project/asr/replica/target"
)

// fakeCopier plays a service copy: the start answer, then one status per
// poll (the last one repeats).
type fakeCopier struct {
	startErr error
	start    *blob.CopyStatusType
	id       string
	polls    []blob.CopyStatusType
	pollIDs  []string // optional copy id per poll
	polled   int
	src      string
	cond     *blob.AccessConditions
}

func (f *fakeCopier) StartCopyFromURL(ctx context.Context, src string, o *blob.StartCopyFromURLOptions) (blob.StartCopyFromURLResponse, error) {
	f.src, f.cond = src, o.AccessConditions
	if f.startErr != nil {
		return blob.StartCopyFromURLResponse{}, f.startErr
	}
	var id *string
	if f.id != "" {
		id = &f.id
	}
	return blob.StartCopyFromURLResponse{CopyID: id, CopyStatus: f.start}, nil
}

func (f *fakeCopier) GetProperties(ctx context.Context, o *blob.GetPropertiesOptions) (blob.GetPropertiesResponse, error) {
	n := f.polled
	f.polled++
	i := min(n, len(f.polls)-1)
	id := f.id
	if len(f.pollIDs) > 0 {
		id = f.pollIDs[min(n, len(f.pollIDs)-1)]
	}
	return blob.GetPropertiesResponse{CopyID: to.Ptr(id), CopyStatus: to.Ptr(f.polls[i]), CopyStatusDescription: to.Ptr("500 InternalError")}, nil
}

func pollTarget(timeout time.Duration) *Target {
	o := defaultOptions()
	o.copyTimeout, o.copyPollFirst, o.copyPollMax = timeout, time.Millisecond, 4*time.Millisecond
	return &Target{opts: o}
}

func TestCopyPolling(t *testing.T) {
	const (
		pending = blob.CopyStatusTypePending
		success = blob.CopyStatusTypeSuccess
		failed  = blob.CopyStatusTypeFailed
		aborted = blob.CopyStatusTypeAborted
	)
	for _, c := range []struct {
		name    string
		f       fakeCopier
		timeout time.Duration
		started bool
		want    error // nil: success
		polls   int
	}{
		{"done at start", fakeCopier{start: to.Ptr(success), id: "c1"}, time.Minute, true, nil, 0},
		{"no status at all", fakeCopier{}, time.Minute, true, nil, 0},
		{"pending then success", fakeCopier{start: to.Ptr(pending), id: "c1", polls: []blob.CopyStatusType{pending, pending, success}}, time.Minute, true, nil, 3},
		{"pending then failed", fakeCopier{start: to.Ptr(pending), id: "c1", polls: []blob.CopyStatusType{pending, failed}}, time.Minute, true, errCopyFailed, 2},
		{"aborted", fakeCopier{start: to.Ptr(pending), id: "c1", polls: []blob.CopyStatusType{aborted}}, time.Minute, true, target.ErrUnavailable, 1},
		{"never ends", fakeCopier{start: to.Ptr(pending), id: "c1", polls: []blob.CopyStatusType{pending}}, 30 * time.Millisecond, true, context.DeadlineExceeded, -1},
		{"replaced by another copy", fakeCopier{start: to.Ptr(pending), id: "c1", polls: []blob.CopyStatusType{pending}, pollIDs: []string{"c1", "c2"}}, time.Minute, false, target.ErrExists, 2},
		{"destination exists", fakeCopier{startErr: &azcore.ResponseError{StatusCode: http.StatusConflict, ErrorCode: "BlobAlreadyExists"}}, time.Minute, false, target.ErrExists, 0},
		{"start refused", fakeCopier{startErr: &azcore.ResponseError{StatusCode: http.StatusForbidden, ErrorCode: "AuthorizationFailure"}}, time.Minute, false, target.ErrAuth, 0},
	} {
		f := c.f
		started, err := pollTarget(c.timeout).copyBlob(t.Context(), &f, "https://a/c/d.vhd?snapshot=x", nil, "copy")
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		case c.want == errCopyFailed && !errors.Is(err, target.ErrUnavailable):
			t.Errorf("%s: error %v is not ErrUnavailable", c.name, err)
		}
		if started != c.started {
			t.Errorf("%s: started = %v, want %v", c.name, started, c.started)
		}
		if c.polls >= 0 && f.polled != c.polls {
			t.Errorf("%s: polled %d times, want %d", c.name, f.polled, c.polls)
		}
		if c.polls < 0 && f.polled < 3 {
			t.Errorf("%s: polled only %d times before the bound", c.name, f.polled)
		}
		if f.src != "https://a/c/d.vhd?snapshot=x" || f.cond == nil || f.cond.ModifiedAccessConditions == nil ||
			f.cond.ModifiedAccessConditions.IfNoneMatch == nil || *f.cond.ModifiedAccessConditions.IfNoneMatch != azcore.ETagAny {
			t.Errorf("%s: copy started from %q without If-None-Match: *", c.name, f.src)
		}
	}
}

func TestCopyPollingCancel(t *testing.T) {
	f := fakeCopier{start: to.Ptr(blob.CopyStatusTypePending), id: "c1", polls: []blob.CopyStatusType{blob.CopyStatusTypePending}}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	started, err := pollTarget(time.Minute).copyBlob(ctx, &f, "src", nil, "copy")
	if !started || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: started %v, error %v; want true, context.Canceled", started, err)
	}
}

func FuzzPlan(f *testing.F) {
	f.Add([]byte{0, 1}, uint16(600))
	f.Fuzz(func(t *testing.T, pattern []byte, pages uint16) {
		// Build a write from a pattern of zero and non-zero pages.
		n := int(pages)%(target.MaxWrite/target.PageSize) + 1
		p := make([]byte, n*target.PageSize)
		for i := range n {
			if len(pattern) > 0 && pattern[i%len(pattern)]&1 == 1 {
				p[i*target.PageSize+int(pattern[i%len(pattern)])%target.PageSize] = 1
			}
		}
		var next int64
		for _, r := range plan(p) {
			if r.off != next || r.n <= 0 || r.off%target.PageSize != 0 || r.n%target.PageSize != 0 {
				t.Fatalf("run %+v does not follow on at %d in page units", r, next)
			}
			if r.zero && !bytes.Equal(p[r.off:r.off+r.n], make([]byte, r.n)) {
				t.Fatalf("run %+v is cleared but holds data", r)
			}
			if r.zero && r.n < zeroRunMin && r.n != int64(len(p)) {
				t.Fatalf("run %+v is a short zero run cleared on its own", r)
			}
			next = r.off + r.n
		}
		if next != int64(len(p)) {
			t.Fatalf("runs cover %d of %d bytes", next, len(p))
		}
	})
}
