package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Report is what Check found.
type Report struct {
	Path  string `json:"path"`
	Sound bool   `json:"sound"`
	// Problem is the first damage found; Problems lists bbolt's own
	// findings, up to maxProblems.
	Problem  string   `json:"problem,omitempty"`
	Problems []string `json:"problems,omitempty"`
	// Warnings are findings that leave the file usable: a damaged meta
	// page bbolt fell back from.
	Warnings    []string `json:"warnings,omitempty"`
	DamagedMeta []int    `json:"damaged_meta,omitempty"`
	Size        int64    `json:"size"`
	PageSize    int      `json:"page_size,omitempty"`
	Pages       uint64   `json:"pages,omitempty"` // bbolt's high-water mark
	TxID        uint64   `json:"txid,omitempty"`
	Schema      int      `json:"schema,omitempty"`
	Site        string   `json:"site,omitempty"`
	Policies    int      `json:"policies"`
	Items       int      `json:"items"`
	Points      int      `json:"points"`
	Jobs        int      `json:"jobs"`
	Plans       int      `json:"plans"`
}

const (
	maxProblems = 20
	// checkTimeout is how long Check waits for the site lock: a writer
	// holds it for one transaction only.
	checkTimeout = 5 * time.Second
)

// Check verifies a state file fully, for `asr state check`: the checks
// made before every transaction, every page the file's trees reach (read
// with plain reads, so a wild page can't fault), bbolt's own consistency
// check, the schema, and that every record decodes. It opens the file read
// only. It returns the Report so far with ErrCorrupt, ErrSchema, ErrNoSite
// or ErrAccess when the file is not sound.
func Check(path string) (Report, error) {
	r := Report{Path: path}
	err := check(path, &r)
	var d *damaged
	if errors.As(err, &d) {
		r.Problem = d.detail
	} else if err != nil {
		r.Problem = err.Error()
	}
	r.Sound = err == nil
	return r, err
}

func check(path string, r *Report) error {
	l, err := lockFile(path+".lock", checkTimeout, true)
	if err != nil {
		return err
	}
	defer l.Unlock()
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		r.Size = fi.Size()
	}
	m, err := inspect(path)
	if err != nil {
		return err
	}
	r.PageSize, r.Pages, r.TxID = m.pageSize, m.pgid, m.txid
	if m.damaged >= 0 {
		r.DamagedMeta = []int{m.damaged}
		r.Warnings = append(r.Warnings, m.fallback(path))
	}
	if err := walkPages(path, m.meta, nil); err != nil {
		return err
	}
	return guard(path, func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: checkTimeout, ReadOnly: true})
		if err != nil {
			return openError(path, err)
		}
		defer db.Close()
		return db.View(func(btx *bolt.Tx) error {
			// Drain the whole channel: bbolt's checker goroutine blocks
			// on it until it has sent every finding.
			for err := range btx.Check() {
				if len(r.Problems) < maxProblems {
					r.Problems = append(r.Problems, err.Error())
				}
			}
			if len(r.Problems) > 0 {
				return corruptError(path, fmt.Sprintf("bbolt check: %s", r.Problems[0]))
			}
			return countRecords(&Tx{tx: btx, path: path}, r)
		})
	})
}

// countRecords decodes every record of every bucket and counts them.
func countRecords(tx *Tx, r *Report) error {
	if err := tx.begin(false, false); err != nil {
		return err
	}
	tx.get(bMeta, "schema", &r.Schema)
	site, err := tx.Site()
	if err != nil {
		return tx.corrupt("no site record")
	}
	r.Site = site.Name
	counts := []struct {
		bucket []byte
		n      *int
		decode func([]byte) error
	}{
		{bMeta, nil, func(b []byte) error { var v json.RawMessage; return json.Unmarshal(b, &v) }},
		{bPolicies, &r.Policies, func(b []byte) error { var v Policy; return json.Unmarshal(b, &v) }},
		{bItems, &r.Items, func(b []byte) error { var v Item; return json.Unmarshal(b, &v) }},
		{bPoints, &r.Points, func(b []byte) error { var v Point; return json.Unmarshal(b, &v) }},
		{bJobs, &r.Jobs, func(b []byte) error { var v Job; return json.Unmarshal(b, &v) }},
		{bPlans, &r.Plans, func(b []byte) error { var v Plan; return json.Unmarshal(b, &v) }},
	}
	for _, c := range counts {
		b := tx.tx.Bucket(c.bucket)
		if b == nil {
			continue
		}
		n := 0
		err := b.ForEach(func(k, v []byte) error {
			if v == nil {
				return tx.corrupt(fmt.Sprintf("unexpected bucket %q in %s", k, c.bucket))
			}
			if err := c.decode(v); err != nil {
				return tx.corrupt(fmt.Sprintf("record %q in %s: %v", k, c.bucket, err))
			}
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if c.n != nil {
			*c.n = n
		}
	}
	return nil
}

// walkPages reads every page reachable from the root bucket with plain
// reads and checks its header and that each element stays inside its
// page. bbolt's Check runs in a goroutine of its own, where a memory fault
// can't be recovered and kills the process; after this walk it only meets
// pages that are in bounds. seen, when given, receives every page id found.
func walkPages(path string, m meta, seen map[uint64]uint16) error {
	f, err := os.Open(path)
	if err != nil {
		return accessOr(path, err)
	}
	defer f.Close()
	if seen == nil {
		seen = map[uint64]uint16{}
	}
	w := &walker{f: f, m: m, seen: seen}
	if err := w.node(m.root); err != nil {
		return corruptError(path, err.Error())
	}
	return nil
}

type walker struct {
	f    *os.File
	m    meta
	seen map[uint64]uint16 // page id -> page type
}

func (w *walker) node(id uint64) error {
	if _, ok := w.seen[id]; ok {
		return fmt.Errorf("page %d is reached twice", id)
	}
	var h [pageHeader]byte
	if id < 2 || id >= w.m.pgid {
		return fmt.Errorf("a branch points at page %d, outside the file's %d pages", id, w.m.pgid)
	}
	if _, err := w.f.ReadAt(h[:], int64(id)*int64(w.m.pageSize)); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	if p := headerProblem(h[:], w.m, id, branchPage, leafPage); p != "" {
		return fmt.Errorf("%s", p)
	}
	page := make([]byte, (uint64(ne.Uint32(h[12:]))+1)*uint64(w.m.pageSize))
	if _, err := w.f.ReadAt(page, int64(id)*int64(w.m.pageSize)); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	w.seen[id] = ne.Uint16(h[8:])
	return w.elements(page, id)
}

// elements checks the elements of a page (or of an inline bucket's page,
// which lives in its parent's value) and walks on to the pages they name.
func (w *walker) elements(page []byte, id uint64) error {
	if len(page) < pageHeader {
		return fmt.Errorf("page %d: inline bucket cut short", id)
	}
	flags, count := ne.Uint16(page[8:]), int(ne.Uint16(page[10:]))
	if pageHeader+count*elemSize > len(page) {
		return fmt.Errorf("page %d claims %d elements, more than fit", id, count)
	}
	for i := range count {
		e := page[pageHeader+i*elemSize:]
		at := pageHeader + i*elemSize
		switch flags {
		case branchPage:
			pos, ksize, child := int(ne.Uint32(e[0:])), int(ne.Uint32(e[4:])), ne.Uint64(e[8:])
			if at+pos+ksize > len(page) {
				return fmt.Errorf("page %d: key %d runs past the page", id, i)
			}
			if err := w.node(child); err != nil {
				return err
			}
		case leafPage:
			eflags, pos, ksize, vsize := ne.Uint32(e[0:]), int(ne.Uint32(e[4:])), int(ne.Uint32(e[8:])), int(ne.Uint32(e[12:]))
			if at+pos+ksize+vsize > len(page) {
				return fmt.Errorf("page %d: record %d runs past the page", id, i)
			}
			if eflags&bucketLeaf == 0 {
				continue
			}
			v := page[at+pos+ksize : at+pos+ksize+vsize]
			if len(v) < 16 {
				return fmt.Errorf("page %d: bucket header %d cut short", id, i)
			}
			var err error
			if root := ne.Uint64(v); root == 0 {
				err = w.elements(v[16:], id) // an inline bucket
			} else {
				err = w.node(root)
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("page %d has type %#x", id, flags)
		}
	}
	return nil
}
