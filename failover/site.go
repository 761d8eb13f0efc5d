package failover

import (
	"context"
	"fmt"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// SyncResult is what a sync changed in a recovery site's state file.
type SyncResult struct {
	Target string   `json:"target"`
	VMs    []string `json:"vms"`
	Added  []string `json:"added,omitempty"`
	Points int      `json:"points"`
	// Plans are the recovery plans imported (see importPlans).
	Plans []string `json:"plans,omitempty"`
}

// Sync brings a recovery site's state file up to date with its target. A
// VM new on the target becomes an item (Protected, or InitialReplication
// while it has no point); every item's points become the target's; disks
// and sizes follow the manifest. An item this site is failing over keeps
// its state and failover record: only the points change under it. It
// reads the target first and writes the state file in one transaction, so
// a sync killed anywhere leaves the old state or the new. The target's
// recovery plans are imported too, so the site can run them.
func Sync(ctx context.Context, v *vault.Vault, t target.Target, url string) (SyncResult, error) {
	out := SyncResult{Target: url}
	vms, err := catalog.VMs(ctx, t)
	if err != nil {
		return out, fmt.Errorf("list VMs on %s: %w", url, err)
	}
	type vmData struct {
		m   catalog.Manifest
		pts []catalog.Point
		// home: no failback this site committed is still on record, so
		// the primary replicates the VM again (asr reprotect there).
		home bool
	}
	var data []vmData
	for _, vm := range vms {
		m, err := catalog.ReadManifest(ctx, t, vm)
		if err != nil {
			return out, err
		}
		pts, err := catalog.Points(ctx, t, vm)
		if err != nil {
			return out, err
		}
		f, ok, err := catalog.ReadFailover(ctx, t, vm)
		if err != nil {
			return out, err
		}
		data = append(data, vmData{m, pts, !ok || f.State != vault.StateFailbackCommitted})
		out.VMs = append(out.VMs, vm)
	}
	plans, err := catalog.Plans(ctx, t)
	if err != nil {
		return out, fmt.Errorf("list recovery plans on %s: %w", url, err)
	}
	err = v.Update(func(tx *vault.Tx) error {
		names, err := importPlans(tx, plans, url)
		if err != nil {
			return err
		}
		out.Plans = names
		for _, d := range data {
			it, err := tx.Item(d.m.VM)
			isNew := err != nil
			if !isNew && it.Target != url {
				continue // protected from here to the primary (reverse reprotect)
			}
			if isNew {
				it = vault.Item{VM: d.m.VM, Target: url, Health: vault.HealthNormal, Created: d.m.Time, Policy: replica.DefaultPolicy}
				out.Added = append(out.Added, d.m.VM)
			}
			if d.m.Policy != nil {
				if _, err := tx.Policy(d.m.Policy.Name); err != nil {
					if err := tx.PutPolicy(replica.VaultPolicy(d.m.Policy)); err != nil {
						return err
					}
				}
				it.Policy = d.m.Policy.Name
			}
			it.Disks = nil
			for _, md := range d.m.Disks {
				it.Disks = append(it.Disks, vault.Disk{Name: md.Name, Path: md.Source, Format: md.Format, Size: md.Size,
					Replica: md.Replica, ReplicaSize: md.ReplicaSize, Copied: true, CopiedTo: md.Size})
			}
			if !vault.FailedOver(it.State) || it.State == vault.StateFailbackCommitted && d.home {
				it.State, it.Failover, it.Failback = vault.StateProtected, nil, nil
				if len(d.pts) == 0 {
					it.State = vault.StateInitialReplication
				}
			}
			old, err := tx.Points(d.m.VM)
			if err != nil {
				return err
			}
			for _, p := range old {
				if err := tx.DeletePoint(d.m.VM, p.ID); err != nil {
					return err
				}
			}
			for _, p := range d.pts {
				if err := tx.PutPoint(replica.VaultPoint(p)); err != nil {
					return err
				}
				it.LastPoint, it.LastPointAt = p.ID, p.Time
				if p.AppConsistent {
					it.LastAppAt = p.Time
				}
				out.Points++
			}
			if err := tx.PutItem(it); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
