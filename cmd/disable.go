package cmd

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
)

func newDisableCmd(g *globals) *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:   "disable-protection VM [--keep-replica]",
		Short: "Stop protecting a VM and remove its replica and recovery points",
		Long: `Stop protecting a VM. Its record, recovery points and local logs are
removed, and so are its replica disks and snapshots on the target unless
--keep-replica is given. On a terminal it asks for the VM's name typed
back first; without one it needs --yes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			vm := args[0]
			if err := replica.CheckName("VM", vm); err != nil {
				return usageError{err}
			}
			if err := confirmDisable(g, vm, keep); err != nil {
				return err
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			if err := e.DisableProtection(c.Context(), vm, keep); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(struct {
					VM          string `json:"vm"`
					Disabled    bool   `json:"disabled"`
					ReplicaKept bool   `json:"replica_kept"`
				}{vm, true, keep})
			}
			g.say("%s: protection disabled", vm)
			return nil
		},
	}
	c.Flags().BoolVar(&keep, "keep-replica", false, "leave the replica disks and snapshots on the target")
	return c
}

// confirmDisable asks a person to type the VM's name back before its
// replica and points are deleted; a script must say --yes.
func confirmDisable(g *globals, vm string, keep bool) error {
	if keep || g.Yes {
		return nil
	}
	if !g.io.Interactive {
		return usageError{fmt.Errorf("disable-protection deletes the replica and recovery points of %s; pass --yes (or --keep-replica)", vm)}
	}
	fmt.Fprintf(g.io.Err, "This deletes the replica disks and every recovery point of VM %s.\nType the VM's name to confirm: ", vm)
	line, _ := bufio.NewReader(g.io.In).ReadString('\n')
	if strings.TrimSpace(line) != vm {
		return fmt.Errorf("the name typed does not match %s; nothing was deleted: %w", vm, context.Canceled)
	}
	return nil
}
