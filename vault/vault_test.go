package vault

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func newVault(t *testing.T) *Vault {
	t.Helper()
	v, err := Init(filepath.Join(t.TempDir(), "site.db"), "primary", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInitCreatesPrivateFileOnce(t *testing.T) {
	v := newVault(t)
	fi, err := os.Stat(v.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := Init(v.Path(), "again", time.Second); !errors.Is(err, ErrExists) {
		t.Fatalf("second init: %v, want ErrExists", err)
	}
	var s Site
	if err := v.View(func(tx *Tx) (err error) { s, err = tx.Site(); return }); err != nil || s.Name != "primary" {
		t.Fatalf("site %+v, %v", s, err)
	}
}

func TestOpenMissingIsNoSite(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "none.db"), time.Second); !errors.Is(err, ErrNoSite) {
		t.Fatalf("got %v, want ErrNoSite", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	v := newVault(t)
	db, err := bolt.Open(v.Path(), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put([]byte("schema"), []byte("99")) })
	db.Close()
	err = v.View(func(*Tx) error { return nil })
	if !errors.Is(err, ErrSchema) {
		t.Fatalf("got %v, want ErrSchema", err)
	}
}

func TestSecondHolderGetsLockedNamingHolder(t *testing.T) {
	v := newVault(t)
	l, err := v.LockVM("web")
	if err != nil {
		t.Fatal(err)
	}
	// flock is per open file description, so a second open in this process
	// conflicts just as another process would.
	_, err = v.LockVM("web")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), Who()) {
		t.Fatalf("got %v, want ErrLocked naming %q", err, Who())
	}
	if _, err := v.LockVM("db"); err != nil {
		t.Fatalf("another VM must not be locked: %v", err)
	}
	l.Unlock()
	l2, err := v.LockVM("web")
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	l2.Unlock()
}

func TestRecordsRoundTripAndOrder(t *testing.T) {
	v := newVault(t)
	err := v.Update(func(tx *Tx) error {
		for _, id := range []string{"20260101T000002Z", "20260101T000001Z"} {
			if err := tx.PutPoint(Point{ID: id, VM: "a"}); err != nil {
				return err
			}
		}
		if err := tx.PutPoint(Point{ID: "x", VM: "ab"}); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			if err := tx.PutJob(&Job{Kind: "replicate", VM: "a"}); err != nil {
				return err
			}
		}
		return tx.PutItem(Item{VM: "a", State: StateProtected})
	})
	if err != nil {
		t.Fatal(err)
	}
	v.View(func(tx *Tx) error {
		pts, _ := tx.Points("a")
		if len(pts) != 2 || pts[0].ID != "20260101T000001Z" {
			t.Errorf("points of a: %+v", pts)
		}
		jobs, _ := tx.Jobs()
		if len(jobs) != 3 || jobs[0].ID != 1 || jobs[2].ID != 3 {
			t.Errorf("jobs: %+v", jobs)
		}
		if _, err := tx.Item("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing item: %v", err)
		}
		return nil
	})
	if err := v.Update(func(tx *Tx) error { return tx.DeleteItem("a") }); err != nil {
		t.Fatal(err)
	}
	v.View(func(tx *Tx) error {
		if pts, _ := tx.Points("a"); len(pts) != 0 {
			t.Errorf("points survive DeleteItem: %+v", pts)
		}
		if pts, _ := tx.Points("ab"); len(pts) != 1 {
			t.Errorf("DeleteItem(a) touched ab: %+v", pts)
		}
		return nil
	})
}
