package vault

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bigVault builds a state file with hundreds of items, points and jobs over
// many transactions, so it has many pages, branch pages and free pages.
func bigVault(t *testing.T) *Vault {
	t.Helper()
	v := newVault(t)
	for batch := 0; batch < 20; batch++ {
		err := v.Update(func(tx *Tx) error {
			for i := 0; i < 20; i++ {
				vm := fmt.Sprintf("vm-%03d-%02d", batch, i)
				it := Item{VM: vm, Policy: "default", Target: "file:///srv/target", State: StateProtected,
					Health: HealthNormal, Created: time.Unix(1700000000, 0).UTC(),
					Disks: []Disk{{Name: "os", Path: "/vms/" + vm + "/os.vhd", Format: "dynamic", Size: 1 << 34}}}
				if err := tx.PutItem(it); err != nil {
					return err
				}
				for p := 0; p < 2; p++ {
					id := fmt.Sprintf("20260101T%06dZ", p)
					if err := tx.PutPoint(Point{ID: id, VM: vm, Disks: []string{"os"}, Bytes: int64(p) << 20}); err != nil {
						return err
					}
				}
				if err := tx.PutJob(&Job{Kind: "replicate", VM: vm, State: JobSucceeded,
					Steps: []Step{{Name: "ship logs", State: JobSucceeded, Done: 1 << 20, Total: 1 << 20}}}); err != nil {
					return err
				}
			}
			return tx.PutPolicy(Policy{Name: fmt.Sprintf("p%02d", batch), Frequency: time.Minute})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// readAll reads every record the Tx API offers, as `asr status`, `asr
// points` and `asr jobs` do between them.
func readAll(tx *Tx) error {
	items, err := tx.Items()
	if err != nil {
		return err
	}
	for _, it := range items {
		if _, err := tx.Item(it.VM); err != nil {
			return err
		}
		if _, err := tx.Points(it.VM); err != nil {
			return err
		}
	}
	if _, err := list[Point](tx, bPoints, ""); err != nil {
		return err
	}
	jobs, err := tx.Jobs()
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if _, err := tx.Job(j.ID); err != nil {
			return err
		}
	}
	_, err = tx.Policies()
	return err
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.IsDir() {
		ents, _ := os.ReadDir(path)
		return fmt.Sprintf("dir with %d entries", len(ents))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func metaOf(t *testing.T, path string) metaInfo {
	t.Helper()
	m, err := inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// reachableLeaf picks the leaf page of the items, points or jobs trees
// nearest the middle of the file: a page every full read goes through.
func reachableLeaf(t *testing.T, path string, m meta) uint64 {
	t.Helper()
	seen := map[uint64]uint16{}
	if err := walkPages(path, m, seen); err != nil {
		t.Fatal(err)
	}
	best := uint64(0)
	for id, typ := range seen {
		if typ == leafPage && id != m.root && absDiff(id, m.pgid/2) < absDiff(best, m.pgid/2) {
			best = id
		}
	}
	if best == 0 {
		t.Fatal("no leaf page to damage")
	}
	return best
}

func absDiff(a, b uint64) uint64 { return max(a, b) - min(a, b) }

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeAt(t *testing.T, path string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// damageMeta spoils the body of meta page n, leaving its magic.
func damageMeta(t *testing.T, path string, m meta, n int) {
	writeAt(t, path, []byte("junk junk junk"), int64(n*m.pageSize)+pageHeader+16)
}

// TestDamagedStateIsErrCorruptAndNeverWritten damages a real state file in
// each of the ways a disk, a copy or an operator does, and checks that every
// read and write is refused with ErrCorrupt naming the file and what to do,
// that Check agrees, that no panic escapes, and that the file's bytes stay
// as they were.
func TestDamagedStateIsErrCorruptAndNeverWritten(t *testing.T) {
	cases := []struct {
		name   string
		detail string // in the error
		damage func(t *testing.T, path string, m meta)
	}{
		{"junk 4 KiB in the middle", "", func(t *testing.T, path string, m meta) {
			id := reachableLeaf(t, path, m)
			writeAt(t, path, randomBytes(1, 4096), int64(id)*int64(m.pageSize))
		}},
		// The header kept, bbolt's own page id check passes: the junk
		// is met as wild element offsets (faults) or undecodable records.
		{"junk in a page body, header kept", "", func(t *testing.T, path string, m meta) {
			id := reachableLeaf(t, path, m)
			writeAt(t, path, randomBytes(3, m.pageSize-pageHeader), int64(id)*int64(m.pageSize)+pageHeader)
		}},
		{"truncated to half", "truncated", func(t *testing.T, path string, m meta) {
			fi, _ := os.Stat(path)
			if fi.Size()/2 >= int64(m.pgid)*int64(m.pageSize) {
				t.Fatalf("half of %d bytes still holds all %d pages: not a truncation", fi.Size(), m.pgid)
			}
			os.Truncate(path, fi.Size()/2)
		}},
		{"truncated by one page", "truncated", func(t *testing.T, path string, m meta) {
			os.Truncate(path, int64(m.pgid-1)*int64(m.pageSize))
		}},
		{"zero length", "is empty", func(t *testing.T, path string, m meta) { os.Truncate(path, 0) }},
		{"a directory", "is a directory", func(t *testing.T, path string, m meta) {
			os.Remove(path)
			os.Mkdir(path, 0o700)
		}},
		{"a text file", "not a bbolt state file", func(t *testing.T, path string, m meta) {
			os.WriteFile(path, []byte(strings.Repeat("site: primary\npolicy: default\n", 300)), 0o600)
		}},
		{"random bytes", "not a bbolt state file", func(t *testing.T, path string, m meta) {
			os.WriteFile(path, randomBytes(2, 64<<10), 0o600)
		}},
		{"a VHD", "not a bbolt state file", func(t *testing.T, path string, m meta) {
			b := make([]byte, 1<<20+512)
			copy(b[1<<20:], "conectix")
			os.WriteFile(path, b, 0o600)
		}},
		{"both meta pages damaged", "both meta pages damaged", func(t *testing.T, path string, m meta) {
			damageMeta(t, path, m, 0)
			damageMeta(t, path, m, 1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := bigVault(t)
			c.damage(t, v.Path(), metaOf(t, v.Path()).meta)
			before := fileHash(t, v.Path())
			// partial attempts read only the jobs: they can miss junk in a
			// page of items or points, but must still write nothing.
			attempts := []struct {
				what    string
				partial bool
				run     func() error
			}{
				{"view of every record", false, func() error { return v.View(readAll) }},
				{"update", false, func() error {
					return v.Update(func(tx *Tx) error {
						if err := readAll(tx); err != nil {
							return err
						}
						return tx.PutJob(&Job{Kind: "replicate", VM: "new", State: JobRunning})
					})
				}},
				// A caller that drops the error must not get a commit.
				{"update ignoring errors", false, func() error {
					return v.Update(func(tx *Tx) error {
						readAll(tx)
						tx.PutJob(&Job{Kind: "replicate", VM: "new", State: JobRunning})
						return nil
					})
				}},
				{"check", false, func() error { _, err := Check(v.Path()); return err }},
				{"lock VM", true, func() error { l, err := v.LockVM("vm-000-00"); l.Unlock(); return err }},
				{"sweep jobs", true, func() error { return v.SweepJobs() }},
			}
			for _, a := range attempts {
				err := noPanic(t, a.run)
				switch {
				case err == nil && a.partial && c.detail == "":
					t.Logf("%s did not read the damaged page", a.what)
				case !errors.Is(err, ErrCorrupt):
					t.Fatalf("%s: got %v, want ErrCorrupt", a.what, err)
				default:
					for _, want := range []string{v.Path(), c.detail, "nothing was written", "asr state check", "asr state rebuild"} {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("%s: %q does not say %q", a.what, err, want)
						}
					}
					if a.what == "view of every record" {
						t.Logf("view: %v", err)
					}
				}
				if after := fileHash(t, v.Path()); after != before {
					t.Fatalf("%s changed the damaged file", a.what)
				}
			}
			r, _ := Check(v.Path())
			if r.Sound || r.Problem == "" {
				t.Errorf("check report %+v", r)
			}
			t.Logf("%s: %s", c.name, r.Problem)
		})
	}
}

func noPanic(t *testing.T, f func() error) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic escaped: %v", r)
		}
	}()
	return f()
}

// TestOneDamagedMetaFallsBackWithOneWarning damages the newer meta page:
// bbolt silently goes back one transaction. The vault says so once per
// Vault, Check reports it, and work goes on.
func TestOneDamagedMetaFallsBackWithOneWarning(t *testing.T) {
	v := bigVault(t)
	m := metaOf(t, v.Path())
	newer := int(m.txid % 2) // bbolt writes transaction N to meta page N%2
	damageMeta(t, v.Path(), m.meta, newer)

	r, err := Check(v.Path())
	if err != nil || !r.Sound || len(r.DamagedMeta) != 1 || r.DamagedMeta[0] != newer || len(r.Warnings) != 1 || r.TxID != m.txid-1 {
		t.Fatalf("check: %v, %+v", err, r)
	}
	var warnings []string
	v.Warn = func(msg string) { warnings = append(warnings, msg) }
	for range 3 {
		if err := v.View(readAll); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Update(func(tx *Tx) error { return tx.PutPolicy(Policy{Name: "after"}) }); err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 {
		t.Fatalf("Warn called %d times, want once: %q", len(warnings), warnings)
	}
	for _, want := range []string{v.Path(), fmt.Sprintf("meta page %d", newer), fmt.Sprintf("transaction %d", m.txid-1), "last change may be lost", "asr state check"} {
		if !strings.Contains(warnings[0], want) {
			t.Errorf("warning %q does not say %q", warnings[0], want)
		}
	}
	if r.Warnings[0] != warnings[0] {
		t.Errorf("check says %q, Warn said %q", r.Warnings[0], warnings[0])
	}
	// The write went to the damaged page (transaction N again), so the
	// file is whole again.
	if r, err := Check(v.Path()); err != nil || len(r.Warnings) != 0 {
		t.Errorf("after a write: %v, %+v", err, r)
	}
}

func TestCheckCountsASoundFile(t *testing.T) {
	v := bigVault(t)
	r, err := Check(v.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Sound || r.Items != 400 || r.Points != 800 || r.Jobs != 400 || r.Policies != 20 || r.Site != "primary" || r.Schema != Schema {
		t.Fatalf("report %+v", r)
	}
	if r.Pages < 50 {
		t.Fatalf("only %d pages: the corruption tests need a bigger file", r.Pages)
	}
}

func TestCheckMissingFileIsNoSite(t *testing.T) {
	if _, err := Check(filepath.Join(t.TempDir(), "none.db")); !errors.Is(err, ErrNoSite) {
		t.Fatalf("got %v, want ErrNoSite", err)
	}
}

// TestGuardTurnsFaultsIntoErrCorrupt reads a mapping past the end of its
// file, as bbolt does on a file cut short under it: a SIGBUS, which without
// SetPanicOnFault kills the process.
func TestGuardTurnsFaultsIntoErrCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "short")
	os.WriteFile(path, make([]byte, 2*os.Getpagesize()), 0o600)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := syscall.Mmap(int(f.Fd()), 0, 2*os.Getpagesize(), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(data)
	os.Truncate(path, 0)
	err = guard(path, func() error {
		sink = data[os.Getpagesize()+1]
		return nil
	})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "reading it failed") {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

var sink byte

// TestCallerPanicIsNotBlamedOnTheFile: a bug in the caller's function
// panics as it would without the vault, and the file is left as it was.
func TestCallerPanicIsNotBlamedOnTheFile(t *testing.T) {
	v := newVault(t)
	before := fileHash(t, v.Path())
	defer func() {
		if r := recover(); r != "caller bug" {
			t.Fatalf("recovered %v, want the caller's own panic", r)
		}
		if fileHash(t, v.Path()) != before {
			t.Fatal("a panicking Update was committed")
		}
	}()
	v.Update(func(tx *Tx) error {
		tx.PutPolicy(Policy{Name: "half-done"})
		panic("caller bug")
	})
	t.Fatal("no panic")
}

// TestUndecodableRecordIsErrCorrupt: a record bbolt reads fine but that is
// not the JSON asr wrote is damage too, for reads, for updates that ignore
// the error, and for the job sweep.
func TestUndecodableRecordIsErrCorrupt(t *testing.T) {
	v := newVault(t)
	db, err := bolt.Open(v.Path(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		tx.Bucket(bItems).Put([]byte("web"), []byte(`{"vm":"web",`))
		return tx.Bucket(bJobs).Put(jobKey(7), []byte(`{"vm":"web","state":"Running","steps":[}`))
	})
	db.Close()
	before := fileHash(t, v.Path())
	for what, run := range map[string]func() error{
		"item":  func() error { return v.View(func(tx *Tx) error { _, err := tx.Item("web"); return err }) },
		"items": func() error { return v.View(func(tx *Tx) error { _, err := tx.Items(); return err }) },
		"job":   func() error { return v.View(func(tx *Tx) error { _, err := tx.Job(7); return err }) },
		"update ignoring it": func() error {
			return v.Update(func(tx *Tx) error { tx.Items(); return tx.PutPolicy(Policy{Name: "x"}) })
		},
		"LockVM":    func() error { l, err := v.LockVM("web"); l.Unlock(); return err },
		"SweepJobs": v.SweepJobs,
		"Check":     func() error { _, err := Check(v.Path()); return err },
	} {
		if err := run(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "web") && !strings.Contains(err.Error(), "job") {
			t.Errorf("%s: %v, want ErrCorrupt naming the record", what, err)
		}
	}
	if fileHash(t, v.Path()) != before {
		t.Fatal("the file changed")
	}
}
