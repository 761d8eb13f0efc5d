package replica

import (
	"context"
	"fmt"
	"time"

	"github.com/asr-project/asr/vault"
)

// Resume is for the operator who fixed what made a VM Critical (new
// credentials, the missing disk back in place): it clears the failure and
// retries at once, a resync if one is pending, else a replicate cycle. A
// VM that is not Critical is simply retried now.
func (e *Engine) Resume(ctx context.Context, vms []string) ([]Result, error) {
	var out []Result
	var first error
	for _, vm := range vms {
		r := e.resumeOne(ctx, vm)
		if r.err != nil && first == nil {
			first = r.err
		}
		out = append(out, r)
	}
	return out, first
}

func (e *Engine) resumeOne(ctx context.Context, vm string) Result {
	if err := CheckName("VM", vm); err != nil {
		return Result{VM: vm, Error: err.Error(), err: err}
	}
	var it vault.Item
	err := e.Vault.Update(func(tx *vault.Tx) (err error) {
		if it, err = tx.Item(vm); err != nil {
			return err
		}
		if it.State == vault.StateInitialReplication || it.Health != vault.HealthCritical {
			return nil
		}
		it.Failures, it.FirstFailure, it.LastError = 0, time.Time{}, ""
		it.Health, it.HealthReason = vault.HealthWarning, "resumed by the operator"
		return tx.PutItem(it)
	})
	if err != nil {
		return Result{VM: vm, Error: err.Error(), err: err}
	}
	e.event(vm, "resumed: retrying now")
	if it.State == vault.StateResyncRequired || it.State == vault.StateResyncing {
		return e.resyncOne(ctx, vm, true, false)
	}
	r := e.replicateOne(ctx, vm, true)
	if r.err != nil {
		r.err = fmt.Errorf("VM %s is still failing: %w", vm, r.err)
		r.Error = r.err.Error()
	}
	return r
}
