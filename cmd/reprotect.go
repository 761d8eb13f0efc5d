package cmd

import (
	"github.com/spf13/cobra"
)

func newReprotectCmd(g *globals) *cobra.Command {
	var url string
	c := &cobra.Command{
		Use:   "reprotect VM [--target URL]",
		Short: "Replicate a VM in the direction it now runs",
		Long: `Replicate a VM in the direction it now runs; both directions keep one
history (asr points VM says which site made each point).

After a committed failover, at the site that ran it: --target URL names a
target at the primary site. The recovered disks become this site's
protected disks (serve them with asr track VM and start the VM on its
sockets), each replica is seeded from the original disk at the primary, and
a resync sends only the blocks in which the recovered disk differs.

After a committed failback (here or at the recovery site), at the primary,
without --target: the replica still holds the failover's point, so a resync
seeds it instead of a new copy: only the blocks that changed are sent. Start
asr track VM first, so the VM's writes are logged.

Either way the writes made meanwhile ship next and a new recovery point is
recorded. Killed, the same command goes on.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := g.failover()
			if err != nil {
				return err
			}
			res, err := r.Reprotect(c.Context(), args[0], url)
			return g.results(res, err, "reprotected")
		},
	}
	c.Flags().StringVar(&url, "target", "", "a target at the primary site (reverse reprotect of a committed failover)")
	return c
}
