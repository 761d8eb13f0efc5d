package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asr-project/asr/replica/target"
)

// Layout is the version of the objects this package reads and writes.
const Layout = 1

// ErrBadData: an object on the target can't be read as its type, or has a
// layout newer than this asr knows.
var ErrBadData = errors.New("bad data on target")

// Manifest describes a protected VM on its target.
type Manifest struct {
	Layout int       `json:"layout"`
	VM     string    `json:"vm"`
	Site   string    `json:"site"`
	Disks  []Disk    `json:"disks"`
	Time   time.Time `json:"time"`
	// Policy is the VM's policy as it was when protection was enabled.
	Policy *Policy `json:"policy,omitempty"`
}

// Disk is one disk in a manifest.
type Disk struct {
	Name        string `json:"name"`
	Replica     string `json:"replica"`
	Size        int64  `json:"size"`
	ReplicaSize int64  `json:"replica_size"`
	// Source, Format and FirstID are the source disk at the primary and
	// the random ID its log chain starts from.
	Source  string `json:"source,omitempty"`
	Format  string `json:"format,omitempty"`
	FirstID string `json:"first_id,omitempty"`
}

// Policy is a replication policy as the manifest records it.
type Policy struct {
	Name               string        `json:"name"`
	Frequency          time.Duration `json:"frequency"`
	Retention          time.Duration `json:"retention"`
	AppConsistentEvery time.Duration `json:"app_consistent_every"`
	ResyncWindow       string        `json:"resync_window"`
	FreezeCommand      string        `json:"freeze_command,omitempty"`
	ThawCommand        string        `json:"thaw_command,omitempty"`
	BandwidthWork      int64         `json:"bandwidth_work,omitempty"`
	BandwidthOther     int64         `json:"bandwidth_other,omitempty"`
}

// Point is one recovery point: every disk of a VM at one instant.
type Point struct {
	Layout        int       `json:"layout,omitempty"`
	ID            string    `json:"id"`
	VM            string    `json:"vm"`
	Time          time.Time `json:"time"`
	AppConsistent bool      `json:"app_consistent"`
	Disks         []string  `json:"disks"` // disk names; each replica's snapshot is named ID
	Bytes         int64     `json:"bytes"` // bytes shipped for this point
	// Chain says, per disk, the last log the point holds.
	Chain map[string]Link `json:"chain,omitempty"`
	// Sizes says, per disk, its size at the point (an older point keeps
	// its size after the disk grew).
	Sizes map[string]int64 `json:"sizes,omitempty"`
	// Site is the site that replicated the point, which says its
	// direction once a VM has failed over and back.
	Site string `json:"site,omitempty"`
}

// Link is one log in a disk's chain.
type Link struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

// Status is what the primary last told the target about a VM's writes.
type Status struct {
	Layout int    `json:"layout"`
	VM     string `json:"vm"`
	// LastWrite is the newest write the primary knew of when it last
	// replicated: the end of the logs it sealed, shipped or not.
	LastWrite time.Time `json:"last_write"`
	// Reported is when the primary wrote this.
	Reported time.Time `json:"reported"`
}

// Failover is a failover of a VM, as both sites see it.
type Failover struct {
	Layout int    `json:"layout"`
	VM     string `json:"vm"`
	Kind   string `json:"kind"` // planned or unplanned
	// Site is the site that ran it; State is its item's state there.
	Site  string    `json:"site"`
	State string    `json:"state"`
	Point string    `json:"point"`
	Time  time.Time `json:"time"`
	// Disks names, per disk, the file a failback wrote at the primary
	// when it is not the protected one (an alternate location), so the
	// primary's reprotect replicates from it.
	Disks map[string]string `json:"disks,omitempty"`
}

// PointID is the ID of a point taken at t: it sorts by time.
func PointID(t time.Time) string { return t.UTC().Format("20060102T150405.000Z") }

func vmPrefix(vm string) string    { return "vms/" + vm + "/" }
func manifestKey(vm string) string { return vmPrefix(vm) + "manifest.json" }
func pointPrefix(vm string) string { return vmPrefix(vm) + "points/" }
func pointKey(vm, id string) string {
	return pointPrefix(vm) + id + ".json"
}
func statusKey(vm string) string   { return vmPrefix(vm) + "status.json" }
func failoverKey(vm string) string { return vmPrefix(vm) + "failover.json" }

// MapKey is the object holding a replica's checksum map of a digest.
func MapKey(vm, disk, digest string) string { return vmPrefix(vm) + "maps/" + disk + "." + digest }

// MapPrefix is the prefix of a disk's checksum map objects.
func MapPrefix(vm, disk string) string { return vmPrefix(vm) + "maps/" + disk + "." }

func put(ctx context.Context, t target.Target, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := t.PutObject(ctx, key, data); err != nil {
		return fmt.Errorf("write %s on target: %w", key, err)
	}
	return nil
}

// get reads an object into v and checks its layout field, when it has one.
func get(ctx context.Context, t target.Target, key, what string, v any) error {
	data, err := t.GetObject(ctx, key)
	if err != nil {
		return fmt.Errorf("%s on target: %w", what, err)
	}
	var l struct {
		Layout int `json:"layout"`
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return fmt.Errorf("%s on target (%s): %v: %w", what, key, err, ErrBadData)
	}
	if l.Layout > Layout {
		return fmt.Errorf("%s has layout %d, this asr knows %d; upgrade asr: %w", what, l.Layout, Layout, ErrBadData)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s on target (%s): %v: %w", what, key, err, ErrBadData)
	}
	return nil
}

// HasManifest reports whether the target holds a manifest for vm.
func HasManifest(ctx context.Context, t target.Target, vm string) (bool, error) {
	_, err := t.GetObject(ctx, manifestKey(vm))
	if errors.Is(err, target.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// PutManifest writes a VM's manifest.
func PutManifest(ctx context.Context, t target.Target, m Manifest) error {
	m.Layout = Layout
	return put(ctx, t, manifestKey(m.VM), m)
}

// ReadManifest reads a VM's manifest; a missing one is target.ErrNotFound.
func ReadManifest(ctx context.Context, t target.Target, vm string) (Manifest, error) {
	var m Manifest
	return m, get(ctx, t, manifestKey(vm), "VM "+vm, &m)
}

// VMs lists the VMs whose manifests a target holds, sorted.
func VMs(ctx context.Context, t target.Target) ([]string, error) {
	keys, err := t.ListObjects(ctx, "vms/")
	if err != nil {
		return nil, err
	}
	var vms []string
	for _, k := range keys {
		if vm, ok := strings.CutSuffix(strings.TrimPrefix(k, "vms/"), "/manifest.json"); ok && !strings.Contains(vm, "/") {
			vms = append(vms, vm)
		}
	}
	return vms, nil
}

// PutPoint records a recovery point.
func PutPoint(ctx context.Context, t target.Target, p Point) error {
	p.Layout = Layout
	return put(ctx, t, pointKey(p.VM, p.ID), p)
}

// DeletePoint removes a point's record; a missing one is success.
func DeletePoint(ctx context.Context, t target.Target, vm, id string) error {
	return t.DeleteObject(ctx, pointKey(vm, id))
}

// Points lists a VM's recovery points, oldest first.
func Points(ctx context.Context, t target.Target, vm string) ([]Point, error) {
	keys, err := t.ListObjects(ctx, pointPrefix(vm))
	if err != nil {
		return nil, err
	}
	out := make([]Point, 0, len(keys))
	for _, k := range keys {
		var p Point
		if err := get(ctx, t, k, "recovery point "+k, &p); err != nil {
			if errors.Is(err, target.ErrNotFound) {
				continue // pruned since the listing
			}
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// PutStatus records what the primary knows of a VM's writes.
func PutStatus(ctx context.Context, t target.Target, s Status) error {
	s.Layout = Layout
	return put(ctx, t, statusKey(s.VM), s)
}

// ReadStatus reads a VM's status; ok is false when there is none.
func ReadStatus(ctx context.Context, t target.Target, vm string) (s Status, ok bool, err error) {
	err = get(ctx, t, statusKey(vm), "status of VM "+vm, &s)
	if errors.Is(err, target.ErrNotFound) {
		return s, false, nil
	}
	return s, err == nil, err
}

// PutFailover records a VM's failover.
func PutFailover(ctx context.Context, t target.Target, f Failover) error {
	f.Layout = Layout
	return put(ctx, t, failoverKey(f.VM), f)
}

// ReadFailover reads a VM's failover record; ok is false when there is none.
func ReadFailover(ctx context.Context, t target.Target, vm string) (f Failover, ok bool, err error) {
	err = get(ctx, t, failoverKey(vm), "failover of VM "+vm, &f)
	if errors.Is(err, target.ErrNotFound) {
		return f, false, nil
	}
	return f, err == nil, err
}

// DeleteFailover removes a VM's failover record.
func DeleteFailover(ctx context.Context, t target.Target, vm string) error {
	return t.DeleteObject(ctx, failoverKey(vm))
}
