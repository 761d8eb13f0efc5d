package replica

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// Layout is the version of the objects the engine keeps on a target.
const Layout = 1

// Manifest describes a protected VM on its target, enough for a recovery
// site to fail over without the primary's state file, and for the primary
// to rebuild its state file (asr state rebuild).
type Manifest struct {
	Layout int            `json:"layout"`
	VM     string         `json:"vm"`
	Site   string         `json:"site"`
	Disks  []ManifestDisk `json:"disks"`
	Time   time.Time      `json:"time"`
	// Policy is the VM's policy as it was when protection was enabled.
	Policy *vault.Policy `json:"policy,omitempty"`
}

// ManifestDisk is one disk in a manifest.
type ManifestDisk struct {
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

func manifestKey(vm string) string  { return "vms/" + vm + "/manifest.json" }
func pointKey(vm, id string) string { return "vms/" + vm + "/points/" + id + ".json" }
func pointPrefix(vm string) string  { return "vms/" + vm + "/points/" }
func pointID(t time.Time) string    { return t.UTC().Format("20060102T150405.000Z") }
func diskNames(it *vault.Item) []string {
	return mapDisks(it, func(d vault.Disk) string { return d.Name })
}

func mapDisks[T any](it *vault.Item, f func(vault.Disk) T) []T {
	out := make([]T, len(it.Disks))
	for i, d := range it.Disks {
		out[i] = f(d)
	}
	return out
}

func putJSON(ctx context.Context, t target.Target, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := t.PutObject(ctx, key, data); err != nil {
		return fmt.Errorf("write %s on target: %w", key, err)
	}
	return nil
}

// putManifest writes the manifest at enable time, when each disk's
// AppliedID is still the chain's first link.
func putManifest(ctx context.Context, t target.Target, site string, it *vault.Item, pol *vault.Policy, now time.Time) error {
	m := Manifest{Layout: Layout, VM: it.VM, Site: site, Time: now, Policy: pol,
		Disks: mapDisks(it, func(d vault.Disk) ManifestDisk {
			return ManifestDisk{Name: d.Name, Replica: d.Replica, Size: d.Size, ReplicaSize: d.ReplicaSize,
				Source: d.Path, Format: d.Format, FirstID: d.AppliedID}
		})}
	return putJSON(ctx, t, manifestKey(it.VM), m)
}

// ReadManifest reads a VM's manifest from a target.
func ReadManifest(ctx context.Context, t target.Target, vm string) (Manifest, error) {
	var m Manifest
	data, err := t.GetObject(ctx, manifestKey(vm))
	if err != nil {
		return m, fmt.Errorf("VM %s on target: %w", vm, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("manifest of VM %s on target: %v: %w", vm, err, ErrBadData)
	}
	if m.Layout > Layout {
		return m, fmt.Errorf("manifest of VM %s has layout %d, this asr knows %d; upgrade asr: %w", vm, m.Layout, Layout, ErrBadData)
	}
	return m, nil
}

// TargetVMs lists the VMs whose manifests a target holds.
func TargetVMs(ctx context.Context, t target.Target) ([]string, error) {
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

// TargetPoints lists a VM's recovery points as recorded on the target,
// oldest first.
func TargetPoints(ctx context.Context, t target.Target, vm string) ([]vault.Point, error) {
	keys, err := t.ListObjects(ctx, pointPrefix(vm))
	if err != nil {
		return nil, err
	}
	var out []vault.Point
	for _, k := range keys {
		data, err := t.GetObject(ctx, k)
		if err != nil {
			return nil, err
		}
		var p vault.Point
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("recovery point %s on target: %v: %w", k, err, ErrBadData)
		}
		out = append(out, p)
	}
	return out, nil
}
