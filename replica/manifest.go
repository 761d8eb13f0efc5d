package replica

import (
	"context"
	"time"

	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// The engine's records and the target's objects (package catalog) are
// separate types; these functions are the only place they meet.

func pointID(t time.Time) string { return catalog.PointID(t) }
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

// putManifest writes the manifest at enable time, when each disk's
// AppliedID is still the chain's first link.
func putManifest(ctx context.Context, t target.Target, site string, it *vault.Item, pol *vault.Policy, now time.Time) error {
	m := catalog.Manifest{VM: it.VM, Site: site, Time: now, Policy: PolicyRecord(pol),
		Disks: mapDisks(it, func(d vault.Disk) catalog.Disk {
			return catalog.Disk{Name: d.Name, Replica: d.Replica, Size: d.Size, ReplicaSize: d.ReplicaSize,
				Source: d.Path, Format: d.Format, FirstID: d.AppliedID}
		})}
	return catalog.PutManifest(ctx, t, m)
}

// PolicyRecord is a policy as the target records it.
func PolicyRecord(p *vault.Policy) *catalog.Policy {
	if p == nil {
		return nil
	}
	return &catalog.Policy{Name: p.Name, Frequency: p.Frequency, Retention: p.Retention,
		AppConsistentEvery: p.AppConsistentEvery, ResyncWindow: p.ResyncWindow,
		FreezeCommand: p.FreezeCommand, ThawCommand: p.ThawCommand,
		BandwidthWork: p.BandwidthWork, BandwidthOther: p.BandwidthOther}
}

// VaultPolicy is a policy the target recorded, as a state file record.
func VaultPolicy(p *catalog.Policy) vault.Policy {
	return vault.Policy{Name: p.Name, Frequency: p.Frequency, Retention: p.Retention,
		AppConsistentEvery: p.AppConsistentEvery, ResyncWindow: p.ResyncWindow,
		FreezeCommand: p.FreezeCommand, ThawCommand: p.ThawCommand,
		BandwidthWork: p.BandwidthWork, BandwidthOther: p.BandwidthOther}
}

// PointRecord is a point as the target records it.
func PointRecord(p vault.Point) catalog.Point {
	out := catalog.Point{ID: p.ID, VM: p.VM, Time: p.Time, AppConsistent: p.AppConsistent,
		Disks: p.Disks, Bytes: p.Bytes, Sizes: p.Sizes, Site: p.Site}
	if p.Chain != nil {
		out.Chain = map[string]catalog.Link{}
		for k, l := range p.Chain {
			out.Chain[k] = catalog.Link{Seq: l.Seq, ID: l.ID}
		}
	}
	return out
}

// VaultPoint is a point the target recorded, as a state file record.
func VaultPoint(p catalog.Point) vault.Point {
	out := vault.Point{ID: p.ID, VM: p.VM, Time: p.Time, AppConsistent: p.AppConsistent,
		Disks: p.Disks, Bytes: p.Bytes, Sizes: p.Sizes, Site: p.Site}
	if p.Chain != nil {
		out.Chain = map[string]vault.Link{}
		for k, l := range p.Chain {
			out.Chain[k] = vault.Link{Seq: l.Seq, ID: l.ID}
		}
	}
	return out
}

// TargetPoints lists a VM's recovery points as recorded on the target,
// oldest first, as state file records.
func TargetPoints(ctx context.Context, t target.Target, vm string) ([]vault.Point, error) {
	pts, err := catalog.Points(ctx, t, vm)
	out := make([]vault.Point, len(pts))
	for i, p := range pts {
		out[i] = VaultPoint(p)
	}
	return out, err
}
