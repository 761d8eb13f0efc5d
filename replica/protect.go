package replica

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/image"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// Protect asks for a VM's disks to be protected to a target.
type Protect struct {
	VM     string
	Disks  []string // disk file paths
	Target string   // target URL
	Policy string
	Format image.Format // how to read the disks; image.Auto decides by content
	Domain string       // the libvirt domain the disks came from, if any
}

// freeSpacer is implemented by targets that can tell their free space.
type freeSpacer interface {
	FreeSpace(ctx context.Context) (int64, error)
}

// EnableProtection records the item, copies each disk to the target and
// makes the first recovery point. Run again after a crash with the same
// arguments, it resumes the copy where it stopped.
func (e *Engine) EnableProtection(ctx context.Context, req Protect) (vault.Job, error) {
	if err := CheckName("VM", req.VM); err != nil {
		return vault.Job{}, err
	}
	if u, err := url.Parse(req.Target); err != nil || u.User != nil || u.RawQuery != "" {
		return vault.Job{}, fmt.Errorf("target URL %q: give credentials through the environment or config, never in the URL (it is stored in the state file): %w", redact(req.Target), ErrInvalid)
	}
	lock, err := e.Vault.LockVM(req.VM)
	if err != nil {
		return vault.Job{}, err
	}
	defer lock.Unlock()

	var it vault.Item
	var site vault.Site
	err = e.Vault.View(func(tx *vault.Tx) (err error) {
		if site, err = tx.Site(); err != nil {
			return err
		}
		if err := primaryOnly(site, "enable-protection"); err != nil {
			return err
		}
		it, err = tx.Item(req.VM)
		return err
	})
	resume := err == nil
	switch {
	case resume && (it.State != vault.StateInitialReplication || !sameRequest(it, req)):
		return vault.Job{}, fmt.Errorf("VM %s is already protected (state %s); disable protection first: %w", req.VM, it.State, ErrExists)
	case err != nil && !errors.Is(err, vault.ErrNotFound):
		return vault.Job{}, err
	}
	// The disks are checked before the target is even opened (opening a
	// file target creates its folder).
	var need int64
	if !resume {
		if it, need, err = e.prepare(req); err != nil {
			return vault.Job{}, err
		}
	}
	t, err := e.openTarget(ctx, req.Target)
	if err != nil {
		return vault.Job{}, err
	}
	defer t.Close()
	if !resume {
		if err := checkTarget(ctx, t, &it, need); err != nil {
			return vault.Job{}, err
		}
	}
	if t, err = e.limit(t, it.Policy); err != nil {
		return vault.Job{}, err
	}
	j, err := e.startJob("enable-protection", req.VM)
	if err != nil {
		return vault.Job{}, err
	}
	if !resume {
		if err := e.Vault.Update(func(tx *vault.Tx) error { return tx.PutItem(it) }); err != nil {
			return j.j, j.finish(err)
		}
		for _, d := range it.Disks {
			moved, err := setAside(d.Path, e.now())
			if err != nil {
				return j.j, j.finish(err)
			}
			if len(moved) > 0 {
				e.event(req.VM, "moved %d file(s) not part of this protection out of the way: %s, into %s.asr-stale/", len(moved), strings.Join(moved, ", "), d.Path)
			}
		}
		// From here every change to the disks must be tracked. A rerun keeps
		// the first stamp, so changes between the runs still count.
		for _, d := range it.Disks {
			if err := tracker.Stamp(d.Path); err != nil {
				return j.j, j.finish(fmt.Errorf("disk %s: %w", d.Path, err))
			}
		}
	}
	err = e.initial(ctx, t, site.Name, &it, j, nil)
	return j.j, j.finish(err)
}

// sameRequest says a rerun names the same disks and target as the item.
func sameRequest(it vault.Item, req Protect) bool {
	if it.Target != req.Target || len(it.Disks) != len(req.Disks) {
		return false
	}
	for i, p := range req.Disks {
		if abs, _ := filepath.Abs(p); abs != it.Disks[i].Path {
			return false
		}
	}
	return req.Policy == "" || req.Policy == it.Policy
}

// prepare checks the policy, the names and the disks before anything is
// written, and returns the item to record and the bytes the target needs.
func (e *Engine) prepare(req Protect) (vault.Item, int64, error) {
	it := vault.Item{VM: req.VM, Policy: req.Policy, Target: req.Target, State: vault.StateInitialReplication,
		Health: vault.HealthNormal, Created: e.now(), Domain: req.Domain}
	if it.Policy == "" {
		it.Policy = DefaultPolicy
	}
	if len(req.Disks) == 0 {
		return it, 0, fmt.Errorf("VM %s: name at least one --disk: %w", req.VM, ErrInvalid)
	}
	var others []vault.Item
	err := e.Vault.View(func(tx *vault.Tx) (err error) {
		if _, err = tx.Policy(it.Policy); err != nil {
			return err
		}
		others, err = tx.Items()
		return err
	})
	if err != nil {
		return it, 0, err
	}
	var need int64
	for _, p := range req.Disks {
		d, alloc, err := inspectDisk(p, req.Format)
		if err != nil {
			return it, 0, err
		}
		if !diskName.MatchString(d.Name) {
			return it, 0, fmt.Errorf("disk %s: its name %q can't be used; rename the file: %w", p, d.Name, ErrInvalid)
		}
		for _, o := range it.Disks {
			if SameFile(o.Path, d.Path) {
				return it, 0, fmt.Errorf("disks %s and %s are the same file: %w", o.Path, d.Path, ErrInvalid)
			}
			if o.Name == d.Name {
				return it, 0, fmt.Errorf("disks %s and %s both have the name %q; rename one file: %w", o.Path, d.Path, d.Name, ErrInvalid)
			}
		}
		for _, o := range others {
			if slices.ContainsFunc(o.Disks, func(x vault.Disk) bool { return SameFile(x.Path, d.Path) }) {
				return it, 0, fmt.Errorf("disk %s is already protected as part of VM %s: %w", d.Path, o.VM, ErrExists)
			}
		}
		d.Replica = replicaName(req.VM, d.Name)
		// A random first link: a log from another disk or an earlier
		// protection can never pass for this chain's first.
		d.AppliedID = uuid.NewString()
		it.Disks = append(it.Disks, d)
		need += alloc
	}
	return it, need, nil
}

func inspectDisk(path string, format image.Format) (vault.Disk, int64, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return vault.Disk{}, 0, err
	}
	if _, err := os.Stat(abs); err != nil {
		return vault.Disk{}, 0, fmt.Errorf("disk %s: %w", path, errors.Join(ErrNotFound, err))
	}
	// Opened first: the format check refuses a FIFO or device without
	// blocking, before anything else opens the path.
	vd, err := image.Open(abs, format)
	if err != nil {
		return vault.Disk{}, 0, fmt.Errorf("disk %s can't be read: %w", path, errors.Join(ErrBadData, err))
	}
	alloc, err := allocatedBytes(vd)
	vd.Close() // a qemu-nbd child must be gone before the lock test
	if err != nil {
		return vault.Disk{}, 0, fmt.Errorf("disk %s: %w", path, errors.Join(ErrBadData, err))
	}
	l, err := tracker.LockImage(abs)
	if err != nil {
		return vault.Disk{}, 0, fmt.Errorf("disk %s: %w", path, errors.Join(vault.ErrLocked, err))
	}
	l.Close()
	return vault.Disk{Name: DiskName(abs), Path: abs, Format: vd.Kind(), Size: vd.Size(),
		ReplicaSize: vhd.RoundSize(vd.Size())}, alloc, nil
}

// checkTarget proves the target writable, free of this VM's replicas, and
// large enough.
func checkTarget(ctx context.Context, t target.Target, it *vault.Item, need int64) error {
	probe := "probe/" + it.VM
	if err := t.PutObject(ctx, probe, []byte("asr")); err != nil {
		return fmt.Errorf("target %s is not writable: %w", it.Target, errors.Join(ErrTarget, err))
	}
	if data, err := t.GetObject(ctx, probe); err != nil || string(data) != "asr" {
		return fmt.Errorf("target %s does not read back what was written (%v): %w", it.Target, err, ErrTarget)
	}
	if err := t.DeleteObject(ctx, probe); err != nil {
		return fmt.Errorf("target %s: %w", it.Target, errors.Join(ErrTarget, err))
	}
	if has, _ := catalog.HasManifest(ctx, t, it.VM); has {
		return fmt.Errorf("target %s already holds VM %s; remove it there or use another target: %w", it.Target, it.VM, ErrExists)
	}
	for _, d := range it.Disks {
		if _, err := t.DiskSize(ctx, d.Replica); err == nil {
			return fmt.Errorf("target %s already holds replica disk %s; remove it or use another target: %w", it.Target, d.Replica, ErrExists)
		}
	}
	if fs, ok := t.(freeSpacer); ok {
		free, err := fs.FreeSpace(ctx)
		if err == nil && free < need {
			return fmt.Errorf("target %s has %d bytes free, the disks need %d: %w", it.Target, free, need, errors.Join(ErrTarget, target.ErrNoSpace))
		}
	}
	return nil
}

// initial copies the disks not yet copied and makes the first point.
// A replica seeded from other disks is then resynchronised (rs, when not
// nil, receives the resync's figures).
func (e *Engine) initial(ctx context.Context, t target.Target, site string, it *vault.Item, j *job, rs *vault.Resync) error {
	if err := j.step("write manifest"); err != nil {
		return err
	}
	var pol vault.Policy
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { pol, err = tx.Policy(it.Policy); return }); err != nil {
		return err
	}
	if err := putManifest(ctx, t, site, it, &pol, e.now()); err != nil {
		return err
	}
	for i := range it.Disks {
		if it.Disks[i].Copied {
			continue
		}
		if err := j.step("copy disk " + it.Disks[i].Name); err != nil {
			return err
		}
		n, err := e.copyDisk(ctx, t, it, i, j)
		j.j.Bytes += n
		if err != nil {
			return err
		}
	}
	if slices.ContainsFunc(it.Disks, func(d vault.Disk) bool { return d.Seed != "" }) {
		if rs == nil {
			rs = &vault.Resync{}
		}
		return e.seeded(ctx, site, it, j, rs)
	}
	return e.cycle(ctx, t, it, j)
}

// DisableProtection stops protecting a VM: its record, points and local
// logs go; the replica and its snapshots go too unless keepReplica.
func (e *Engine) DisableProtection(ctx context.Context, vm string, keepReplica bool) error {
	if err := CheckName("VM", vm); err != nil {
		return err
	}
	lock, err := e.Vault.LockVM(vm)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	var it vault.Item
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { it, err = tx.Item(vm); return }); err != nil {
		return err
	}
	// A running tracker would go on logging writes nobody ships.
	trackLock, err := e.lockTracker(vm)
	if err != nil {
		return fmt.Errorf("asr track is running for %s; stop it first: %w", vm, err)
	}
	defer trackLock.Unlock()
	if !keepReplica {
		t, err := e.openTarget(ctx, it.Target)
		if err != nil {
			return err
		}
		defer t.Close()
		if err := removeFromTarget(ctx, t, &it); err != nil {
			return err
		}
	}
	if err := e.Vault.Update(func(tx *vault.Tx) error { return tx.DeleteItem(vm) }); err != nil {
		return err
	}
	for _, d := range it.Disks {
		tracker.RemoveShipped(d.Path, ^uint64(0))
		for _, p := range tracker.StateFiles(d.Path) {
			os.Remove(p)
		}
		e.uncacheMaps(vm, d.Name)
	}
	return nil
}

func removeFromTarget(ctx context.Context, t target.Target, it *vault.Item) error {
	keys, err := t.ListObjects(ctx, "vms/"+it.VM+"/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := t.DeleteObject(ctx, k); err != nil {
			return err
		}
	}
	for _, d := range it.Disks {
		if err := t.DeleteDisk(ctx, d.Replica); err != nil {
			return err
		}
	}
	return nil
}

// redact drops what may be a secret from a URL before it is shown: all
// before the last '@' (a password may hold any character, '/' too) and
// the query.
func redact(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i] + "?…"
	}
	if i := strings.LastIndexByte(raw, '@'); i >= 0 {
		scheme := ""
		if j := strings.Index(raw[:i], "://"); j >= 0 {
			scheme = raw[:j+3]
		}
		raw = scheme + "…@" + raw[i+1:]
	}
	return raw
}

// SameFile says two paths name one file (hard links and symlinks too).
// A path that can't be read is only the same as itself.
func SameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return os.SameFile(fa, fb)
}

// setAside moves files a disk's earlier protection (or another tool) left
// beside it — logs, activity log, dirty map, markers — into
// <disk>.asr-stale/<time>/, so none of them is taken for part of the new
// chain. It returns the files it moved.
func setAside(disk string, now time.Time) ([]string, error) {
	logs, err := tracker.Logs(disk)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, l := range logs {
		found = append(found, l.Path)
	}
	for _, p := range tracker.StateFiles(disk) {
		if _, err := os.Stat(p); err == nil {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	dir := filepath.Join(disk+".asr-stale", now.Format("20060102T150405.000000000"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("set aside stale files of %s: %w", disk, err)
	}
	for _, p := range found {
		if err := os.Rename(p, filepath.Join(dir, filepath.Base(p))); err != nil {
			return nil, fmt.Errorf("set aside stale file %s: %w", p, err)
		}
	}
	return found, nil
}

func allocatedBytes(d image.Disk) (int64, error) {
	xs, err := d.Extents()
	var n int64
	for _, x := range xs {
		n += x.Len
	}
	return n, err
}
