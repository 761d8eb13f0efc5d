package vault

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"syscall"

	berrors "go.etcd.io/bbolt/errors"
)

// damaged is an ErrCorrupt naming the file and what to do. Its text is the
// whole message, so it does not end in the sentinel's words.
type damaged struct{ path, detail string }

func (e *damaged) Error() string {
	return fmt.Sprintf("state file %s is damaged (%s); nothing was written to it; "+
		"`asr state check` tells more, `asr state rebuild --target URL` rebuilds it from the target", e.path, e.detail)
}

func (e *damaged) Is(target error) bool { return target == ErrCorrupt }

func corruptError(path, detail string) error { return &damaged{path, detail} }

// isAccess says err is the operating system refusing: permissions, or a
// read-only file system.
func isAccess(err error) bool {
	return errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EROFS)
}

// accessOr wraps err in ErrAccess, with what to do, when it is an access
// error; other errors come back unchanged.
func accessOr(path string, err error) error {
	if err == nil || !isAccess(err) {
		return err
	}
	return fmt.Errorf("%w; fix the permissions of %s and its folder (or the read-only mount), or pass --state to use another state file: %w",
		err, path, ErrAccess)
}

// openError classes bolt.Open's failures.
func openError(path string, err error) error {
	switch {
	case isAccess(err):
		return accessOr(path, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return corruptError(path, err.Error())
	}
	return fmt.Errorf("open state file %s: %w", path, err)
}

// callerPanic carries a panic raised by the caller's own function through
// guard, which re-raises it: a bug in the caller is not damage in the file.
type callerPanic struct{ v any }

// guard runs f, which opens the file and runs one bbolt transaction, with
// memory faults turned into panics (bbolt reads the file through mmap, so a
// damaged page is a SIGSEGV or, past the end of a short file, a SIGBUS), and
// turns any panic into ErrCorrupt. bbolt's Update rolls back on a panic, so
// nothing is written.
func guard(path string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if c, ok := r.(callerPanic); ok {
			panic(c.v)
		}
		if r != nil {
			err = corruptError(path, crashDetail(r))
		}
	}()
	return f()
}

// crashDetail is the first line of a panic value: bbolt's assertions can
// dump whole pages.
func crashDetail(r any) string {
	s, _, _ := strings.Cut(fmt.Sprint(r), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return "reading it failed: " + s
}

// inspect runs the cheap checks made before every transaction: the path is
// a non-empty regular file, one of its bbolt meta pages is valid, the file
// is as long as that meta says, and the freelist and root pages it points
// at have the right headers. It never opens the file for writing.
func inspect(path string) (metaInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return metaInfo{}, fmt.Errorf("state file %s: %w; run `asr init --site NAME` first", path, ErrNoSite)
	case err != nil:
		return metaInfo{}, accessOr(path, fmt.Errorf("state file: %w", err))
	case fi.IsDir():
		return metaInfo{}, corruptError(path, "is a directory, not a state file")
	case !fi.Mode().IsRegular():
		return metaInfo{}, corruptError(path, fmt.Sprintf("is a %s, not a state file", fileType(fi.Mode())))
	case fi.Size() == 0:
		return metaInfo{}, corruptError(path, "is empty")
	}
	f, err := os.Open(path)
	if err != nil {
		return metaInfo{}, accessOr(path, fmt.Errorf("state file: %w", err))
	}
	defer f.Close()
	m, detail := readMeta(f, fi.Size())
	if detail != "" {
		return m, corruptError(path, detail)
	}
	return m, nil
}

func fileType(m os.FileMode) string {
	switch {
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
