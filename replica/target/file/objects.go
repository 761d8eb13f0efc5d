package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/asr-project/asr/replica/target"
)

// objectPath checks a key and returns its file. Keys are '/'-separated
// paths under objects/: no empty, "." or ".." segment, no leading '/',
// no segment starting with the work-file prefix.
func (t *Target) objectPath(key string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("file target: object key %q %s: %w", key, why, target.ErrInvalid)
	}
	if key == "" || len(key) > 1024 || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		return bad("must be 1 to 1024 bytes of UTF-8 without NUL")
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return bad("has an empty, '.' or '..' segment (keys are relative paths)")
		case len(seg) > 255:
			return bad("has a segment over 255 bytes")
		case strings.HasPrefix(seg, tmpPrefix) || strings.HasPrefix(seg, delPrefix):
			return bad("has a segment starting with a reserved prefix")
		}
	}
	return filepath.Join(t.dir, objectsDir, filepath.FromSlash(key)), nil
}

// PutObject writes a temporary file beside the object, syncs it, renames
// it over the object and syncs the directory.
func (t *Target) PutObject(ctx context.Context, key string, data []byte) error {
	path, err := t.objectPath(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// A concurrent DeleteObject may remove the directory between mkdir
	// and the write: try again.
	for try := 0; ; try++ {
		err = t.mkdirs(filepath.Dir(path))
		if err == nil {
			err = writeAtomic(filepath.Dir(path), filepath.Base(path), data)
		}
		if !errors.Is(err, fs.ErrNotExist) || try == 3 {
			break
		}
	}
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) || errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("file target: object key %q: a key is a prefix directory of another here (use keys that are not both object and folder): %w: %w", key, err, target.ErrInvalid)
	}
	return err
}

// mkdirs creates dir and its missing parents below objects/, syncing each
// parent a directory was created in.
func (t *Target) mkdirs(dir string) error {
	root := filepath.Join(t.dir, objectsDir)
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == "." {
		return err
	}
	cur := root
	for _, seg := range strings.Split(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, seg)
		if err := os.Mkdir(next, 0o755); err == nil {
			if err := syncDir(cur); err != nil {
				return err
			}
		} else if !errors.Is(err, fs.ErrExist) {
			return ioErr("create", next, err)
		}
		cur = next
	}
	return nil
}

// GetObject reads an object.
func (t *Target) GetObject(ctx context.Context, key string) ([]byte, error) {
	path, err := t.objectPath(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return nil, fmt.Errorf("file target: object %q: %w", key, target.ErrNotFound)
	}
	if err != nil {
		return nil, ioErr("read", path, err)
	}
	return b, nil
}

// ListObjects walks the deepest directory the prefix names.
func (t *Target) ListObjects(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root := filepath.Join(t.dir, objectsDir)
	start := root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir := prefix[:i]
		if _, err := t.objectPath(dir); err != nil {
			return nil, nil // no valid key has this prefix
		}
		start = filepath.Join(root, filepath.FromSlash(dir))
	}
	var keys []string
	err := filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // removed meanwhile, or the prefix names an object
		}
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) || d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, ioErr("list objects in", start, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// DeleteObject removes an object and the directories it leaves empty.
func (t *Target) DeleteObject(ctx context.Context, key string) error {
	path, err := t.objectPath(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err != nil || fi.IsDir() {
		return nil // missing, or only a folder of other keys
	}
	err = os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return ioErr("remove", path, err)
	}
	root := filepath.Join(t.dir, objectsDir)
	dir := filepath.Dir(path)
	for dir != root && os.Remove(dir) == nil { // fails once a directory is not empty
		dir = filepath.Dir(dir)
	}
	return syncDir(dir)
}
