package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/vault"
)

// Rebuilt is what Rebuild recovered from the targets.
type Rebuilt struct {
	State  string   `json:"state"`
	Site   string   `json:"site"`
	VMs    []string `json:"vms"`
	Points int      `json:"points"`
	// MovedAside is where the damaged state file went ("" when there was
	// none).
	MovedAside string `json:"moved_aside,omitempty"`
	// Resync lists VMs whose log positions the targets did not record: they
	// start in ResyncRequired.
	Resync []string `json:"resync,omitempty"`
	// Plans are the site's recovery plans found on the targets (the
	// command line restores them; package failover owns plans).
	Plans []string `json:"plans,omitempty"`
}

// Rebuild makes a new state file at path from what the targets hold: each
// VM's manifest (disks, policy, the first link of each log chain) and its
// recovery points (each records where every disk's chain stood), so
// replication goes on from the newest point without a new initial copy.
// A sound state file is refused; a damaged one is moved aside, never
// written. site "" takes the site the manifests name.
func Rebuild(ctx context.Context, e *Engine, path, site string, targets []string, timeout time.Duration) (Rebuilt, error) {
	out := Rebuilt{State: path, Site: site}
	if _, err := os.Stat(path); err == nil {
		if _, err := vault.Check(path); err == nil {
			return out, fmt.Errorf("state file %s is sound; rebuild replaces only a missing or damaged one: %w", path, ErrExists)
		}
	}
	var items []vault.Item
	var points []vault.Point
	pols := map[string]vault.Policy{DefaultPolicy: NewPolicy(DefaultPolicy)}
	for _, url := range targets {
		t, err := e.openTarget(ctx, url)
		if err != nil {
			return out, err
		}
		vms, err := catalog.VMs(ctx, t)
		for _, vm := range vms {
			if err != nil {
				break
			}
			var m catalog.Manifest
			if m, err = catalog.ReadManifest(ctx, t, vm); err != nil {
				break
			}
			if out.Site == "" {
				out.Site = m.Site
			}
			if m.Site != out.Site {
				continue // another site's VM sharing the target
			}
			var pts []vault.Point
			if pts, err = TargetPoints(ctx, t, vm); err != nil {
				break
			}
			it, ok := itemFromTarget(m, url, pts)
			if !ok {
				out.Resync = append(out.Resync, vm)
			}
			if m.Policy != nil {
				it.Policy = m.Policy.Name
				pols[m.Policy.Name] = VaultPolicy(m.Policy)
			}
			items = append(items, it)
			points = append(points, pts...)
			out.VMs = append(out.VMs, vm)
		}
		t.Close()
		if err != nil {
			return out, fmt.Errorf("read target %s: %w", url, err)
		}
	}
	if out.Site == "" {
		return out, fmt.Errorf("the targets hold no VM to rebuild from; give --site to start an empty site with asr init: %w", ErrNotFound)
	}
	if _, err := os.Stat(path); err == nil {
		out.MovedAside = path + ".damaged-" + e.now().Format("20060102T150405")
		if err := os.Rename(path, out.MovedAside); err != nil {
			return out, fmt.Errorf("move the damaged state file aside: %w", errors.Join(ErrLocal, err))
		}
	}
	v, err := vault.Init(path, out.Site, timeout)
	if err != nil {
		return out, err
	}
	out.Points = len(points)
	return out, v.Update(func(tx *vault.Tx) error {
		for _, p := range pols {
			if err := tx.PutPolicy(p); err != nil {
				return err
			}
		}
		for _, it := range items {
			if err := tx.PutItem(it); err != nil {
				return err
			}
		}
		for _, p := range points {
			if err := tx.PutPoint(p); err != nil {
				return err
			}
		}
		return nil
	})
}

// itemFromTarget rebuilds an item from its manifest and points; ok is
// false when the log positions are unknown and a resync must follow.
func itemFromTarget(m catalog.Manifest, url string, pts []vault.Point) (vault.Item, bool) {
	it := vault.Item{VM: m.VM, Policy: DefaultPolicy, Target: url, State: vault.StateInitialReplication,
		Health: vault.HealthNormal, Created: m.Time}
	for _, md := range m.Disks {
		it.Disks = append(it.Disks, vault.Disk{Name: md.Name, Path: md.Source, Format: md.Format, Size: md.Size,
			Replica: md.Replica, ReplicaSize: md.ReplicaSize, AppliedID: md.FirstID})
	}
	ok := true
	for _, d := range it.Disks {
		ok = ok && d.Path != "" && d.AppliedID != ""
	}
	if len(pts) == 0 {
		// The initial copy never finished: it starts again over the replica.
		return it, ok
	}
	last := pts[len(pts)-1]
	it.State, it.LastPoint, it.LastPointAt = vault.StateProtected, last.ID, last.Time
	for _, p := range pts {
		if p.AppConsistent {
			it.LastAppAt = p.Time
		}
	}
	for i := range it.Disks {
		d := &it.Disks[i]
		d.Copied, d.CopiedTo = true, d.Size
		link, found := last.Chain[d.Name]
		ok = ok && found
		d.AppliedSeq, d.AppliedID = link.Seq, link.ID
	}
	if !ok {
		it.State, it.Health = vault.StateResyncRequired, vault.HealthWarning
		it.HealthReason = "state rebuilt from the target, which did not record where the disks' logs stood"
	}
	return it, ok
}
