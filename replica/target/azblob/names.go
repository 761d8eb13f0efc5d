package azblob

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/asr-project/asr/replica/target"
)

// location is what an azblob URL names.
type location struct {
	account, container, prefix string
}

// parseURL reads azblob://ACCOUNT/CONTAINER[/PREFIX]. Credentials never
// ride in the URL (it ends up in the state file), so user info and query
// strings are refused.
func parseURL(u *url.URL) (location, error) {
	bad := func(format string, args ...any) (location, error) {
		return location{}, fmt.Errorf("azblob URL %q: %s: %w", u.Redacted(), fmt.Sprintf(format, args...), target.ErrInvalid)
	}
	if u.Scheme != Scheme {
		return bad("scheme must be %q", Scheme)
	}
	if u.User != nil {
		return bad("user info is not allowed; put credentials in AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return bad("a query string (SAS token?) is not allowed in the URL; put it in AZURE_STORAGE_SAS_TOKEN")
	}
	if u.Fragment != "" || u.Opaque != "" {
		return bad("want azblob://ACCOUNT/CONTAINER[/PREFIX]")
	}
	account := u.Host
	if !validAccount(account) {
		return bad("account %q must be 3-24 lowercase letters and digits", account)
	}
	path := strings.TrimPrefix(u.Path, "/")
	cont, prefix, _ := strings.Cut(path, "/")
	if !validContainer(cont) {
		return bad("container %q must be 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit", cont)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		if err := checkName("prefix", prefix, true); err != nil {
			return bad("%v", err)
		}
		prefix += "/"
	}
	return location{account: account, container: cont, prefix: prefix}, nil
}

func validAccount(s string) bool {
	if len(s) < 3 || len(s) > 24 {
		return false
	}
	for _, c := range []byte(s) {
		if !isLowerAlnum(c) {
			return false
		}
	}
	return true
}

func validContainer(s string) bool {
	if len(s) < 3 || len(s) > 63 || !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for i, c := range []byte(s) {
		if c == '-' {
			if s[i-1] == '-' {
				return false
			}
			continue
		}
		if !isLowerAlnum(c) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// maxNameLen keeps <prefix>snapshots/<disk>/<name> under Azure's 1024
// character blob-name limit.
const maxNameLen = 255

// checkName validates a disk name (slash allowed: it separates segments),
// a snapshot name (no slash) or a prefix. Names are ASCII letters, digits
// and "._-"; segments are never empty, "." or "..".
func checkName(kind, s string, slash bool) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("%s %q must be 1-%d characters", kind, s, maxNameLen)
	}
	for _, c := range []byte(s) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '-' || (slash && c == '/')
		if !ok {
			allowed := "letters, digits, '.', '_' and '-'"
			if slash {
				allowed += ", with '/' between segments"
			}
			return fmt.Errorf("%s %q has character %q; use %s", kind, s, c, allowed)
		}
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%s %q has an empty, '.' or '..' segment", kind, s)
		}
	}
	return nil
}

// checkKey validates an object key: printable ASCII without backslash,
// segments never empty, "." or "..", and no trailing dot (Azure drops it).
func checkKey(key string) error {
	if key == "" || len(key) > 900 {
		return fmt.Errorf("object key %q must be 1-900 characters: %w", key, target.ErrInvalid)
	}
	if err := checkKeyChars(key); err != nil {
		return err
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("object key %q has an empty, '.' or '..' segment: %w", key, target.ErrInvalid)
		}
	}
	if strings.HasSuffix(key, ".") {
		return fmt.Errorf("object key %q ends in '.', which Azure drops: %w", key, target.ErrInvalid)
	}
	return nil
}

func checkKeyChars(s string) error {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return fmt.Errorf("object key or prefix %q has byte %#x; use printable ASCII without '\\': %w", s, c, target.ErrInvalid)
		}
	}
	return nil
}

func checkDisk(disk string) error {
	if err := checkName("disk name", disk, true); err != nil {
		return fmt.Errorf("%w: %w", err, target.ErrInvalid)
	}
	return nil
}

func checkSnapshot(disk, name string) error {
	if err := checkDisk(disk); err != nil {
		return err
	}
	if err := checkName("snapshot name", name, false); err != nil {
		return fmt.Errorf("%w: %w", err, target.ErrInvalid)
	}
	return nil
}

// DiskURL is the page blob of a disk as an Azure URL (no credentials):
// what an ARM template imports a managed disk from.
func (t *Target) DiskURL(disk string) string {
	// The SDK escapes the '/' of a blob name; Azure reads both forms and
	// people read this one.
	return strings.ReplaceAll(t.cont.NewBlobClient(t.diskBlob(disk)).URL(), "%2F", "/")
}
