package cmd

import (
	"github.com/spf13/cobra"

	"github.com/asr-project/asr/failover"
)

func newFailbackCmd(g *globals) *cobra.Command {
	var alternate string
	c := &cobra.Command{
		Use:   "failback VM [--alternate-location DIR]",
		Short: "Bring a committed failover home to the primary",
		Long: `Bring a committed failover home to the primary.

The recovered VM's disks are compared with the original disks in 64 KiB
blocks and only the blocks that differ are written to them, first while
the recovered VM runs; then the host driver shuts it down, a short final
pass sends what changed meanwhile, and the VM starts at the primary on its
own disks. --alternate-location DIR writes new fixed VHDs DIR/<disk>.vhd
instead (allocated data only), for a primary whose disks were lost.

It runs at the site that failed the VM over, with the original disks
reachable at their paths. The recovered disks are only read: stopped
anywhere, a failback damages neither side, and the same command goes on
where it stopped. Then asr failback commit VM, and asr reprotect VM at the
primary replicates it again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := g.failover()
			if err != nil {
				return err
			}
			res, err := r.Failback(c.Context(), args[0], alternate)
			return g.failbackResult(res, err)
		},
	}
	c.Flags().StringVar(&alternate, "alternate-location", "", "write new disks DIR/<disk>.vhd instead of the original ones")
	c.AddCommand(&cobra.Command{
		Use:   "commit VM",
		Short: "Make a failback final: the recovered VM and its disks are removed",
		Long: `Make a failback final. The VM runs at the primary from now on; what the
failover made at the recovery site is removed (the recovered VM through the
host driver, its disks and files), and asr reprotect VM at the primary
replicates it again. Killed, the same command finishes the job.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := g.failover()
			if err != nil {
				return err
			}
			res, err := r.CommitFailback(c.Context(), args[0])
			return g.failbackResult(res, err)
		},
	})
	return c
}

func (g *globals) failbackResult(res failover.FailbackResult, err error) error {
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(res)
	}
	g.say("%s: %s", res.VM, res.State)
	for _, d := range res.Disks {
		g.say("disk %s", d)
	}
	if res.Compared > 0 || res.Sent > 0 {
		g.say("sent %s (%s after the recovered VM was shut down); last pass compared %s",
			bytesString(res.Sent), bytesString(res.FinalSent), bytesString(res.Compared))
	}
	if res.Host != "" {
		g.say("%s", res.Host)
	}
	for _, r := range res.Removed {
		g.say("removed %s", r)
	}
	for _, n := range res.Notes {
		g.say("%s", n)
	}
	return nil
}
