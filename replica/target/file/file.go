package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asr-project/asr/replica/target"
)

// Sentinel errors of this backend, besides target's.
var (
	// ErrCorrupt: a file of the target's layout fails its checks (a
	// snapshot index with a bad record before good ones, a disk file whose
	// size is not a virtual size plus a footer). Non-recoverable: an
	// operator has to restore the target directory or drop the disk.
	ErrCorrupt = errors.New("file target damaged")
	// ErrLayout: the directory holds another layout version, or is not an
	// asr target at all.
	ErrLayout = errors.New("unknown file target layout")
)

// Layout is the version written to asr-target.json.
const Layout = 1

const (
	layoutFile = "asr-target.json"
	disksDir   = "disks"
	objectsDir = "objects"
)

// Target is a replica target in a local (or mounted) directory.
type Target struct {
	dir string

	mu    sync.Mutex
	disks map[string]*diskState // by encoded disk name

	noClone atomic.Bool // set once the file system refused a reflink
}

var _ target.Target = (*Target)(nil)

func init() { target.Register("file", openURL) }

// openURL accepts file:///abs/path, file:/abs/path and
// file://localhost/abs/path. A relative path is refused: cron runs asr from
// another working directory than the operator's shell.
func openURL(_ context.Context, u *url.URL, _ target.Config) (target.Target, error) {
	p := u.Path
	if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(p) {
		return nil, fmt.Errorf("file target URL %q: the path must be absolute, as in file:///srv/asr: %w", u.Redacted(), target.ErrInvalid)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("file target URL %q: takes no query or fragment: %w", u.Redacted(), target.ErrInvalid)
	}
	return New(p)
}

// New opens the target in dir, creating dir and the layout when dir is
// missing or empty. A non-empty directory without asr-target.json is
// refused, so a mistyped path never fills someone's home directory.
func New(dir string) (*Target, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file target %q: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, ioErr("create the target directory", dir, err)
	}
	if err := checkLayout(dir); err != nil {
		return nil, err
	}
	for _, d := range []string{disksDir, objectsDir} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, ioErr("create", filepath.Join(dir, d), err)
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	t := &Target{dir: dir, disks: map[string]*diskState{}}
	t.sweep()
	return t, nil
}

type layoutDoc struct {
	Layout int `json:"layout"`
}

func checkLayout(dir string) error {
	path := filepath.Join(dir, layoutFile)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var doc layoutDoc
			if err := json.Unmarshal(b, &doc); err != nil {
				return fmt.Errorf("file target %s: %v (restore the file as {\"layout\":%d}): %w", path, err, Layout, ErrLayout)
			}
			if doc.Layout != Layout {
				return fmt.Errorf("file target %s: layout %d, this asr reads layout %d (use the asr that wrote it): %w", path, doc.Layout, Layout, ErrLayout)
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return ioErr("read", path, err)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return ioErr("list", dir, err)
		}
		for _, e := range ents {
			if e.Name() == layoutFile {
				break // another process made it meanwhile: read it
			}
			if !strings.HasPrefix(e.Name(), tmpPrefix) {
				return fmt.Errorf("file target %s: the directory is not empty and has no %s (point the target at a new or empty directory): %w", dir, layoutFile, ErrLayout)
			}
		}
		if err := createLayout(dir); err != nil {
			return err
		}
	}
}

// createLayout links a synced temporary file to the layout name, so that of
// several processes making a new target one wins and the others read its
// file.
func createLayout(dir string) error {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return ioErr("create a temporary file in", dir, err)
	}
	defer os.Remove(f.Name())
	b, _ := json.Marshal(layoutDoc{Layout: Layout})
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(f.Name(), filepath.Join(dir, layoutFile))
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return ioErr("create", filepath.Join(dir, layoutFile), err)
	}
	return syncDir(dir)
}

// Close releases nothing: every call opens and closes its own files.
func (t *Target) Close() error { return nil }

// Local is true: the disks are files on this machine, or on a mount the
// operator chose to treat like one (reading it costs no egress).
func (t *Target) Local() bool { return true }

// String names the target for messages.
func (t *Target) String() string { return "file://" + t.dir }

// Dir returns the target's directory.
func (t *Target) Dir() string { return t.dir }

// validName checks a disk or snapshot name and returns its file-name form.
// A name is 1-200 bytes (each '/' counting 3) of [A-Za-z0-9._-] in '/'-separated segments, none
// empty or starting with '.'; '/' becomes "%2F" so every disk is one flat
// file name and no name can reach another's files.
func validName(kind, name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("file target: %s name %q %s (use letters, digits, '.', '-', '_' and '/'): %w", kind, name, why, target.ErrInvalid)
	}
	enc := strings.ReplaceAll(name, "/", "%2F")
	if len(name) == 0 || len(enc) > 200 {
		return bad("must be 1 to 200 bytes (each '/' counts 3)")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg[0] == '.' {
			return bad("has an empty segment or one starting with '.'")
		}
		for _, c := range []byte(seg) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				return bad(fmt.Sprintf("has the character %q", c))
			}
		}
	}
	return enc, nil
}

func decodeName(enc string) string { return strings.ReplaceAll(enc, "%2F", "/") }

func (t *Target) vhdPath(enc string) string  { return filepath.Join(t.dir, disksDir, enc+".vhd") }
func (t *Target) snapDir(enc string) string  { return filepath.Join(t.dir, disksDir, enc+".snap") }
func (t *Target) lockPath(enc string) string { return filepath.Join(t.dir, disksDir, enc+".lock") }
