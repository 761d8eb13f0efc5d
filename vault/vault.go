package vault

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sentinel errors.
var (
	// ErrNoSite: the state file does not exist; run `asr init` first.
	ErrNoSite = errors.New("site not initialised")
	// ErrExists: init found a state file already there.
	ErrExists = errors.New("already exists")
	// ErrNotFound: no record of that name.
	ErrNotFound = errors.New("not found")
	// ErrLocked: another asr process holds the site or the VM.
	ErrLocked = errors.New("locked by another asr process")
	// ErrSchema: the file was written by a newer asr.
	ErrSchema = errors.New("state file schema is newer than this asr")
	// ErrCorrupt: the state file is damaged or is not an asr state file at
	// all (a directory, an empty file, a text file, a VHD). Nothing was
	// written to it; `asr state check` tells more.
	ErrCorrupt = errors.New("state file damaged")
	// ErrAccess: the state file or its folder can't be read or written
	// (permissions, a read-only file system). Fix that or pass --state.
	ErrAccess = errors.New("state file not accessible")
	// ErrInvalid: a name that can't be used in a path, such as a VM name
	// with a '/' given to LockVM.
	ErrInvalid = errors.New("invalid name")
)

// Schema is the state file's schema version.
const Schema = 1

var (
	bMeta     = []byte("meta")
	bPolicies = []byte("policies")
	bItems    = []byte("items")
	bPoints   = []byte("points")
	bJobs     = []byte("jobs")
	bPlans    = []byte("plans")
	buckets   = [][]byte{bMeta, bPolicies, bItems, bPoints, bJobs, bPlans}
)

// Vault is a site's state file. Each Update or View opens the file, runs one
// transaction and closes it again.
type Vault struct {
	path    string
	timeout time.Duration
	// Warn, when set, receives one line the first time this Vault finds
	// that bbolt had to fall back to the older of its two meta pages.
	Warn   func(msg string)
	warned atomic.Bool
}

// Init creates the state file for a new site.
func Init(path, site string, timeout time.Duration) (*Vault, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("state file %s: %w; use another --state or remove it", path, ErrExists)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, accessOr(path, fmt.Errorf("state directory: %w", err))
	}
	v := &Vault{path: path, timeout: timeout}
	err := v.tx(true, true, func(tx *Tx) error {
		if err := tx.put(bMeta, "schema", Schema); err != nil {
			return err
		}
		return tx.put(bMeta, "site", Site{Name: site, Created: time.Now().UTC()})
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Open opens an existing site's state file. It only checks that the path
// exists; damage is found by the first transaction.
func Open(path string, timeout time.Duration) (*Vault, error) {
	if _, err := os.Lstat(path); err != nil {
		return nil, fmt.Errorf("state file %s: %w; run `asr init --site NAME` first", path, ErrNoSite)
	}
	return &Vault{path: path, timeout: timeout}, nil
}

// Path is the state file's path.
func (v *Vault) Path() string { return v.path }

// Update runs fn in one read-write transaction: all of it is stored or none.
// Nothing is stored once the transaction has met damage, even if fn
// ignores the ErrCorrupt it was given.
func (v *Vault) Update(fn func(*Tx) error) error { return v.tx(true, false, fn) }

// View runs fn in a read-only transaction.
func (v *Vault) View(fn func(*Tx) error) error { return v.tx(false, false, fn) }

// tx runs one transaction: site lock, the cheap checks of inspect, then
// bbolt under guard. The checks come before bolt.Open because opening a
// damaged file for writing can already write to it (an empty file is
// initialised, a short one is grown).
func (v *Vault) tx(write, create bool, fn func(*Tx) error) error {
	l, err := lockFile(v.path+".lock", v.timeout, !write)
	if err != nil {
		return err
	}
	defer l.Unlock()
	if !create {
		m, err := inspect(v.path)
		if err != nil {
			return err
		}
		if m.damaged >= 0 && v.Warn != nil && v.warned.CompareAndSwap(false, true) {
			v.Warn(m.fallback(v.path))
		}
	}
	return guard(v.path, func() error {
		db, err := bolt.Open(v.path, 0o600, &bolt.Options{Timeout: v.timeout, ReadOnly: !write && !create})
		if err != nil {
			return openError(v.path, err)
		}
		defer db.Close()
		run := db.View
		if write {
			run = db.Update
		}
		return run(func(btx *bolt.Tx) error {
			tx := &Tx{tx: btx, path: v.path}
			err := tx.begin(write, create)
			if err == nil {
				err = callFn(fn, tx)
			}
			if tx.bad != nil {
				return tx.bad // rolls an Update back whatever fn returned
			}
			return err
		})
	})
}

// callFn runs the caller's function. Tx methods turn bbolt's panics into
// ErrCorrupt themselves, so a panic that gets here is a bug in the caller:
// it is marked so guard lets it go on instead of blaming the file.
func callFn(fn func(*Tx) error, tx *Tx) error {
	defer func() {
		if r := recover(); r != nil {
			panic(callerPanic{r})
		}
	}()
	return fn(tx)
}

// Tx is one transaction. Records returned by it are copies.
type Tx struct {
	tx   *bolt.Tx
	path string
	bad  error // the first damage met; set, the transaction can't commit
}

func (t *Tx) begin(write, create bool) (err error) {
	defer t.catch(&err)
	if write {
		for _, b := range buckets {
			if _, err := t.tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
	}
	if create {
		return nil
	}
	var schema int
	if err := t.get(bMeta, "schema", &schema); errors.Is(err, ErrNotFound) {
		return t.corrupt("no schema version: not an asr state file")
	} else if err != nil {
		return err
	}
	if schema > Schema {
		return fmt.Errorf("state file %s has schema %d, this asr knows %d; upgrade asr: %w", t.path, schema, Schema, ErrSchema)
	}
	return nil
}

// corrupt records damage found in this transaction and returns it.
func (t *Tx) corrupt(detail string) error {
	if t.bad == nil {
		t.bad = corruptError(t.path, detail)
	}
	return t.bad
}

// catch, deferred by every method that reaches into bbolt, turns a panic
// or memory fault there (a damaged page) into ErrCorrupt.
func (t *Tx) catch(err *error) {
	if r := recover(); r != nil {
		*err = t.corrupt(crashDetail(r))
	}
}

func (t *Tx) get(bucket []byte, key string, v any) (err error) {
	defer t.catch(&err)
	b := t.tx.Bucket(bucket)
	if b == nil {
		return ErrNotFound
	}
	data := b.Get([]byte(key))
	if data == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return t.corrupt(fmt.Sprintf("record %q in %s: %v", key, bucket, err))
	}
	return nil
}

func (t *Tx) put(bucket []byte, key string, v any) (err error) {
	defer t.catch(&err)
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucket).Put([]byte(key), data)
}

func list[T any](t *Tx, bucket []byte, prefix string) (out []T, err error) {
	defer t.catch(&err)
	b := t.tx.Bucket(bucket)
	if b == nil {
		return nil, nil
	}
	c := b.Cursor()
	for k, v := c.Seek([]byte(prefix)); k != nil && string(k[:min(len(k), len(prefix))]) == prefix; k, v = c.Next() {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, t.corrupt(fmt.Sprintf("record %q in %s: %v", k, bucket, err))
		}
		out = append(out, r)
	}
	return out, nil
}

// Site returns the site record.
func (t *Tx) Site() (s Site, err error) { return s, t.get(bMeta, "site", &s) }

// PutSite replaces the site record (its role and target; the name stays).
func (t *Tx) PutSite(s Site) error { return t.put(bMeta, "site", s) }

// Item returns a protected item, or ErrNotFound.
func (t *Tx) Item(vm string) (it Item, err error) {
	if err = t.get(bItems, vm, &it); errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("VM %q is not protected on this site: %w; see `asr status`", vm, ErrNotFound)
	}
	return it, err
}

// PutItem stores a protected item.
func (t *Tx) PutItem(it Item) error { return t.put(bItems, it.VM, it) }

// DeleteItem removes an item and its points.
func (t *Tx) DeleteItem(vm string) (err error) {
	defer t.catch(&err)
	pts, err := t.Points(vm)
	if err != nil {
		return err
	}
	for _, p := range pts {
		if err := t.DeletePoint(vm, p.ID); err != nil {
			return err
		}
	}
	return t.tx.Bucket(bItems).Delete([]byte(vm))
}

// Items lists the protected items by VM name.
func (t *Tx) Items() ([]Item, error) { return list[Item](t, bItems, "") }

// SourceDisks lists the source disk files of every item of the site.
func (t *Tx) SourceDisks() ([]string, error) {
	items, err := t.Items()
	var out []string
	for _, it := range items {
		for _, d := range it.Disks {
			out = append(out, d.Path)
		}
	}
	return out, err
}

// ItemsNamed returns the named items in the order named, or every item
// when none is named; an unknown name is ErrNotFound.
func (t *Tx) ItemsNamed(vms []string) ([]Item, error) {
	if len(vms) == 0 {
		return t.Items()
	}
	out := make([]Item, 0, len(vms))
	for _, vm := range vms {
		it, err := t.Item(vm)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// PutPoint records a recovery point.
func (t *Tx) PutPoint(p Point) error { return t.put(bPoints, p.VM+"\x00"+p.ID, p) }

// DeletePoint removes a recovery point record.
func (t *Tx) DeletePoint(vm, id string) (err error) {
	defer t.catch(&err)
	return t.tx.Bucket(bPoints).Delete([]byte(vm + "\x00" + id))
}

// Points lists a VM's recovery points, oldest first (IDs sort by time).
func (t *Tx) Points(vm string) ([]Point, error) { return list[Point](t, bPoints, vm+"\x00") }

// PutJob stores a job; a job with ID 0 gets the next ID.
func (t *Tx) PutJob(j *Job) (err error) {
	defer t.catch(&err)
	b := t.tx.Bucket(bJobs)
	if j.ID == 0 {
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		j.ID = id
	}
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return b.Put(jobKey(j.ID), data)
}

// Job returns a job by ID, or ErrNotFound.
func (t *Tx) Job(id uint64) (j Job, err error) {
	defer t.catch(&err)
	var data []byte
	if b := t.tx.Bucket(bJobs); b != nil {
		data = b.Get(jobKey(id))
	}
	if data == nil {
		return j, fmt.Errorf("job %d: %w; see `asr jobs`", id, ErrNotFound)
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return j, t.corrupt(fmt.Sprintf("job %d: %v", id, err))
	}
	return j, nil
}

// Jobs lists all jobs, oldest first.
func (t *Tx) Jobs() ([]Job, error) { return list[Job](t, bJobs, "") }

func jobKey(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
	return k
}
