package replica

import (
	"context"
	"fmt"

	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// prune removes recovery points older than the policy's retention, never
// the newest. Each point goes from the target first (object, then
// snapshots) and from the vault last, so a crash leaves a point that the
// next prune removes again, never a recorded point that can't be read.
// The point a test failover runs from is kept until its cleanup.
func (e *Engine) prune(ctx context.Context, t target.Target, it *vault.Item) error {
	var pol vault.Policy
	var pts []vault.Point
	var claimed string
	err := e.Vault.View(func(tx *vault.Tx) (err error) {
		if pol, err = tx.Policy(it.Policy); err != nil {
			return err
		}
		// A test failover started since this cycle read the item may
		// be copying from its point right now: the fresh record says.
		if now, err := tx.Item(it.VM); err == nil && now.Test != nil {
			claimed = now.Test.Point
		}
		pts, err = tx.Points(it.VM)
		return err
	})
	if err != nil || pol.Retention <= 0 {
		return err
	}
	cutoff := e.now().Add(-pol.Retention)
	for _, p := range pts[:max(len(pts)-1, 0)] {
		if !p.Time.Before(cutoff) {
			break
		}
		if p.ID == claimed {
			continue
		}
		if err := catalog.DeletePoint(ctx, t, it.VM, p.ID); err != nil {
			return fmt.Errorf("prune point %s: %w", p.ID, err)
		}
		for _, d := range it.Disks {
			if err := t.DeleteSnapshot(ctx, d.Replica, p.ID); err != nil {
				return fmt.Errorf("prune point %s of %s: %w", p.ID, d.Replica, err)
			}
		}
		crashpoint("pruning")
		if err := e.Vault.Update(func(tx *vault.Tx) error { return tx.DeletePoint(it.VM, p.ID) }); err != nil {
			return err
		}
		e.event(it.VM, "recovery point %s pruned", p.ID)
	}
	return nil
}
