package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newUntrackCmd(g *globals) *cobra.Command {
	var libvirt bool
	c := &cobra.Command{
		Use:   "untrack VM --libvirt",
		Short: "Give a libvirt domain its own disk files back (undoes asr track --libvirt --apply)",
		Long: `Define the VM's libvirt domain again as it was before asr track VM
--libvirt --apply made its disks NBD sources on asr's sockets. The domain
takes it at its next start; stop the tracker only once the VM runs on its
files, or its writes stop being logged.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !libvirt {
				return usageError{fmt.Errorf("untrack undoes the libvirt wiring only: add --libvirt")}
			}
			return unwireLibvirt(c.Context(), g, args[0])
		},
	}
	c.Flags().BoolVar(&libvirt, "libvirt", false, "restore the libvirt domain definition asr track --libvirt --apply kept")
	return c
}
