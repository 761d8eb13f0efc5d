package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDisableCmd(g *globals) *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:   "disable-protection VM [--keep-replica]",
		Short: "Stop protecting a VM and remove its replica and recovery points",
		Long: `Stop protecting a VM. Its record, recovery points and local logs are
removed, and so are its replica disks and snapshots on the target unless
--keep-replica is given. Without a terminal this needs --yes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !keep && !g.Yes && !g.io.TTY {
				return usageError{fmt.Errorf("disable-protection deletes the replica of %s; pass --yes (or --keep-replica)", args[0])}
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			if err := e.DisableProtection(c.Context(), args[0], keep); err != nil {
				return err
			}
			g.say("%s: protection disabled", args[0])
			return nil
		},
	}
	c.Flags().BoolVar(&keep, "keep-replica", false, "leave the replica disks and snapshots on the target")
	return c
}
