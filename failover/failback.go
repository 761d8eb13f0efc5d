package failover

import (
	"context"
	"errors"
)

// Failback brings a committed failover home: the recovered VM's disks are
// synchronised back to the original disks (or copied whole to alternate,
// a folder, when alternate is not ""), the recovered VM is shut down for
// a short final pass, and the VM starts at the primary. The item is then
// FailedBack until CommitFailback. Killed anywhere, the same call goes on.
func (r *Runner) Failback(ctx context.Context, vm, alternate string) (Result, error) {
	return Result{VM: vm}, errors.New("failback: not yet")
}
