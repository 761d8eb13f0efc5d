package target

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"sync"
)

// Sentinel errors. Backends wrap them with %w so callers test with errors.Is.
var (
	// ErrNotFound: the disk, snapshot or object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a create found something already there with other properties.
	ErrExists = errors.New("already exists")
	// ErrInvalid: the request breaks the target's rules (alignment, size,
	// write past the end, write to a snapshot). Retrying cannot help.
	ErrInvalid = errors.New("invalid request")
	// ErrAuth: the target refused our credentials. Non-recoverable until an
	// operator fixes the configuration.
	ErrAuth = errors.New("not authorized")
	// ErrUnavailable: a network, throttling or server failure. Recoverable:
	// the same call may succeed later.
	ErrUnavailable = errors.New("target unavailable")
	// ErrNoSpace: the target ran out of space. Recoverable once freed.
	ErrNoSpace = errors.New("no space left on target")
	// ErrUnknownScheme: no backend is registered for the URL's scheme.
	ErrUnknownScheme = errors.New("unknown target scheme")
)

// PageSize is the write alignment of every target: offsets and lengths of
// WritePages are multiples of it.
const PageSize = 512

// MaxWrite is the largest single WritePages call (Azure's Put Page limit).
const MaxWrite = 4 << 20

// SizeUnit is the granularity of a replica disk's virtual size.
const SizeUnit = 1 << 20

// Extent is a byte range [Off, Off+Len) of a virtual disk.
type Extent struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"`
}

// Write is one write of a batch: P at Off.
type Write struct {
	Off int64
	P   []byte
}

// CheckBatch applies WriteBatch's rules to a batch: each write page-aligned,
// at most MaxWrite, inside size, no two overlapping. The error names the
// first write that breaks one and wraps ErrInvalid.
func CheckBatch(ws []Write, size int64) error {
	sorted := make([]Write, len(ws))
	copy(sorted, ws)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Off < sorted[j].Off })
	for i, w := range sorted {
		n := int64(len(w.P))
		switch {
		case w.Off < 0 || w.Off%PageSize != 0 || n%PageSize != 0 || n > MaxWrite:
			return fmt.Errorf("write of %d bytes at offset %d: offset and length must be multiples of %d, length at most %d: %w", n, w.Off, PageSize, MaxWrite, ErrInvalid)
		case w.Off+n > size:
			return fmt.Errorf("write of %d bytes at offset %d ends past the size %d: %w", n, w.Off, size, ErrInvalid)
		case i > 0 && sorted[i-1].Off+int64(len(sorted[i-1].P)) > w.Off:
			return fmt.Errorf("writes at offsets %d and %d of one batch overlap: %w", sorted[i-1].Off, w.Off, ErrInvalid)
		}
	}
	return nil
}

// Target stores replica disks, their snapshots and small objects.
// Every method is safe for concurrent use.
type Target interface {
	// CreateDisk makes an all-zero disk of the given virtual size, which
	// must be a positive multiple of SizeUnit. It is idempotent: if the disk
	// exists with the same size it succeeds and keeps the data (so an
	// interrupted initial copy can resume); with another size it returns
	// ErrExists.
	CreateDisk(ctx context.Context, disk string, size int64) error

	// DiskSize returns the virtual size of a disk, or ErrNotFound.
	DiskSize(ctx context.Context, disk string) (int64, error)

	// ResizeDisk grows a disk to a new virtual size, a positive multiple of
	// SizeUnit (else ErrInvalid). Growing keeps every existing byte and the
	// new region reads as zeros. The same size is a no-op success, so a
	// resize that crashed or failed is retried by calling it again. A
	// smaller size is ErrInvalid (replicas never shrink); a missing disk is
	// ErrNotFound. Every existing snapshot keeps its old size and content:
	// ReadAt, Ranges and CopyFromSnapshot of it still see the old size and
	// bytes, while DiskSize of the disk gives the new size. After a crash
	// mid-resize DiskSize returns the old size or the new one, and the bytes
	// below the old size are intact either way.
	ResizeDisk(ctx context.Context, disk string, size int64) error

	// WritePages writes p at off. off and len(p) are multiples of PageSize,
	// len(p) <= MaxWrite and off+len(p) <= size, else ErrInvalid. When it
	// returns nil the data is durable. Rewriting the same bytes is harmless,
	// so callers may retry it.
	WritePages(ctx context.Context, disk string, off int64, p []byte) error

	// WriteBatch writes each of ws as WritePages would and returns nil only
	// when all of them are durable. Each write follows WritePages' rules
	// and no two overlap, else ErrInvalid and nothing is written. A backend
	// may write them in any order or at once; after an error any of them
	// may have been written, and retrying the batch is harmless. It is how
	// a cycle applies its logs: one sync for the lot on a file system,
	// bounded concurrent requests on Azure.
	WriteBatch(ctx context.Context, disk string, ws []Write) error

	// ReadAt fills p from off of the disk, or of its snapshot when snapshot
	// is not "". Reading past the virtual size is ErrInvalid; a missing disk
	// or snapshot is ErrNotFound. Never-written ranges read as zeros.
	ReadAt(ctx context.Context, disk, snapshot string, p []byte, off int64) error

	// Ranges lists the disk's (or snapshot's) ranges that may hold non-zero
	// data, sorted and non-overlapping. Ranges outside the list read as
	// zeros; a range inside it may still be zero.
	Ranges(ctx context.Context, disk, snapshot string) ([]Extent, error)

	// Snapshot records the disk's current content under a name, unique per
	// disk. It is idempotent: an existing snapshot of that name is kept as it
	// was. A snapshot never changes and is never written to.
	Snapshot(ctx context.Context, disk, snapshot string) error

	// Snapshots lists the names of a disk's snapshots, oldest first.
	Snapshots(ctx context.Context, disk string) ([]string, error)

	// DeleteSnapshot removes one snapshot; the others and the disk read as
	// before. Deleting a missing snapshot succeeds.
	DeleteSnapshot(ctx context.Context, disk, snapshot string) error

	// CopyFromSnapshot makes a new independent disk dst holding the
	// snapshot's content. dst must not exist (ErrExists). It returns when
	// the copy is complete.
	CopyFromSnapshot(ctx context.Context, disk, snapshot, dst string) error

	// DeleteDisk removes a disk and all its snapshots. Deleting a missing
	// disk succeeds.
	DeleteDisk(ctx context.Context, disk string) error

	// PutObject stores a small object atomically: a reader sees the old
	// content or the new, never a mix.
	PutObject(ctx context.Context, key string, data []byte) error

	// GetObject returns an object's content, or ErrNotFound.
	GetObject(ctx context.Context, key string) ([]byte, error)

	// ListObjects returns the keys that start with prefix, sorted.
	ListObjects(ctx context.Context, prefix string) ([]string, error)

	// DeleteObject removes an object. Deleting a missing object succeeds.
	DeleteObject(ctx context.Context, key string) error

	// Local reports whether reading the target's disks costs no more than
	// reading a local file: no egress charge and no WAN in the way. Callers
	// use it to choose between reading a replica back to compare it (cheap
	// when true) and keeping a checksum map at the target instead. It makes
	// no request and never changes for one Target.
	Local() bool

	// Close releases the target's resources.
	Close() error
}

// FileWriter is implemented by backends whose disks are files on this
// machine, which can hand a snapshot's bytes to a local file without
// reading them through the process.
type FileWriter interface {
	// WriteSnapshotFile writes the snapshot's virtual content into f at
	// the same offsets (f is at least the snapshot's size; ranges the
	// snapshot never wrote are left as they are, holes in a new file),
	// sharing blocks with the target where the file system allows. The
	// disk may keep replicating meanwhile: the result is exactly the
	// snapshot. It returns the bytes moved; on cancellation ctx.Err().
	WriteSnapshotFile(ctx context.Context, disk, snapshot string, f *os.File) (int64, error)
}

// Locator is implemented by backends whose disks have a URL outside asr
// (Azure's page blobs), which a deployment imports disks from.
type Locator interface {
	// DiskURL returns the URL of a disk's data, without credentials.
	DiskURL(disk string) string
}

// Opener opens a target from a parsed URL. cfg carries settings a backend
// may need (credentials come from the environment or config, never from
// the URL that ends up in the state file).
type Opener func(ctx context.Context, u *url.URL, cfg Config) (Target, error)

// Config is what the command line passes to backends besides the URL.
type Config struct {
	// Lookup reads a setting such as AZURE_STORAGE_CONNECTION_STRING from
	// viper or the environment; "" when unset. May be nil.
	Lookup func(key string) string
}

var (
	mu       sync.Mutex
	backends = map[string]Opener{}
)

// Register makes a backend available for a URL scheme. Backends call it
// from init.
func Register(scheme string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	backends[scheme] = open
}

// Open opens the target a URL names, such as file:///srv/asr or
// azblob://account/container.
func Open(ctx context.Context, rawURL string, cfg Config) (Target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("target URL %q: %v: %w", rawURL, err, ErrInvalid)
	}
	mu.Lock()
	open, ok := backends[u.Scheme]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("target URL %q: scheme %q (known: %v): %w", rawURL, u.Scheme, Schemes(), ErrUnknownScheme)
	}
	return open(ctx, u, cfg)
}

// Schemes lists the registered URL schemes.
func Schemes() []string {
	mu.Lock()
	defer mu.Unlock()
	var s []string
	for k := range backends {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
