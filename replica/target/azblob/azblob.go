package azblob

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/asr-project/asr/replica/target"
)

// Scheme is the URL scheme this backend registers.
const Scheme = "azblob"

func init() {
	target.Register(Scheme, func(ctx context.Context, u *url.URL, cfg target.Config) (target.Target, error) {
		return open(ctx, u, cfg, defaultOptions())
	})
}

var _ target.Target = (*Target)(nil)

// Target is a replica target in one Azure Blob container (or Azurite).
// Every method is safe for concurrent use.
type Target struct {
	account   string
	container string
	prefix    string // "" or ends in "/"
	cont      *container.Client
	http      *http.Client // ours, so Close can drop idle connections
	secrets   []string     // credential strings scrubbed from every error
	opts      options
	// clientCopy makes CopyFromSnapshot read and write the data itself
	// instead of asking the service to copy: Azurite (up to 3.37.0 at
	// least) gives a copied page blob the same page list object as its
	// source, so writes to the copy change the source snapshot.
	clientCopy bool

	mu        sync.Mutex
	sizes     map[string]int64  // disk -> virtual size; sizes only grow
	snaps     map[string]string // disk+"\x00"+name -> Azure snapshot timestamp
	snapSizes map[string]int64  // disk+"\x00"+timestamp -> virtual size; never changes
}

// options are the knobs tests turn; production uses defaultOptions.
type options struct {
	transport     policy.Transporter // nil: our own *http.Client
	retry         policy.RetryOptions
	copyTimeout   time.Duration // bound on one CopyFromSnapshot's wait
	copyPollFirst time.Duration
	copyPollMax   time.Duration
	probe         bool // check (and create) the container at Open
}

func defaultOptions() options {
	return options{
		retry: policy.RetryOptions{
			MaxRetries: 3, // 4 tries
			// Long enough for a 4 MiB Put Page on a slow (~1 Mbit/s) uplink.
			TryTimeout:    2 * time.Minute,
			RetryDelay:    500 * time.Millisecond,
			MaxRetryDelay: 8 * time.Second,
		},
		copyTimeout:   time.Hour,
		copyPollFirst: 50 * time.Millisecond,
		copyPollMax:   2 * time.Second,
		probe:         true,
	}
}

// open parses azblob://ACCOUNT/CONTAINER[/PREFIX], resolves credentials
// and makes sure the container exists.
func open(ctx context.Context, u *url.URL, cfg target.Config, o options) (*Target, error) {
	loc, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	cred, err := resolveCredentials(loc.account, cfg)
	if err != nil {
		return nil, err
	}
	t := &Target{
		account:   loc.account,
		container: loc.container,
		prefix:    loc.prefix,
		secrets:   cred.secrets,
		opts:      o,
		// Only an emulator listens on loopback; real Azure never does.
		clientCopy: cred.loopback(),
		sizes:      map[string]int64{},
		snaps:      map[string]string{},
		snapSizes:  map[string]int64{},
	}
	copts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry:     o.retry,
		Telemetry: policy.TelemetryOptions{ApplicationID: "asr"},
		Transport: o.transport,
	}}
	if o.transport == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32 // the engine writes pages concurrently
		t.http = &http.Client{Transport: tr}
		copts.Transport = t.http
	}
	t.cont, err = cred.newContainerClient(loc.container, copts)
	if err != nil {
		return nil, t.fail(err, fmt.Sprintf("open container %q of account %q", loc.container, loc.account))
	}
	if o.probe {
		if err := t.ensureContainer(ctx); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// ensureContainer lists one blob (which a container-scoped SAS may do,
// unlike reading container properties) and creates the container if it is
// missing.
func (t *Target) ensureContainer(ctx context.Context) error {
	max := int32(1)
	pager := t.cont.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{MaxResults: &max})
	_, err := pager.NextPage(ctx)
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("open container %q of account %q", t.container, t.account)
	if !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return t.fail(err, what)
	}
	_, err = t.cont.Create(ctx, nil)
	if err == nil || bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil
	}
	e := t.fail(err, what+": the container does not exist and creating it failed")
	if isAuth(e) {
		return fmt.Errorf("%v; create the container or use credentials that may: %w", e, target.ErrNotFound)
	}
	return e
}

// Close releases idle connections. The Target must not be used after.
func (t *Target) Close() error {
	if t.http != nil {
		t.http.CloseIdleConnections()
	}
	return nil
}

func (t *Target) pageBlob(disk string) *pageblob.Client {
	return t.cont.NewPageBlobClient(t.diskBlob(disk))
}

// diskBlob names the page blob of a disk: <prefix>disks/<disk>.vhd.
func (t *Target) diskBlob(disk string) string { return t.prefix + "disks/" + disk + ".vhd" }

// snapDir holds one block blob per named snapshot of a disk.
func (t *Target) snapDir(disk string) string { return t.prefix + "snapshots/" + disk + "/" }

func (t *Target) snapRecord(disk, name string) *blockblob.Client {
	return t.cont.NewBlockBlobClient(t.snapDir(disk) + name)
}

func (t *Target) objectBlob(key string) string { return t.prefix + "objects/" + key }

// where names a blob for error messages: account/container/blob.
func (t *Target) where(blobName string) string {
	return t.account + "/" + t.container + "/" + blobName
}

func (t *Target) cachedSize(disk string) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.sizes[disk]
	return s, ok
}

func (t *Target) setSize(disk string, size int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sizes[disk] = size
}

// forget drops what the caches know about a disk (it was deleted, or a
// call found it missing).
func (t *Target) forget(disk string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sizes, disk)
	for k := range t.snaps {
		if strings.HasPrefix(k, disk+"\x00") {
			delete(t.snaps, k)
		}
	}
	for k := range t.snapSizes {
		if strings.HasPrefix(k, disk+"\x00") {
			delete(t.snapSizes, k)
		}
	}
}
