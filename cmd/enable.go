package cmd

import (
	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/vhd"
)

func newEnableCmd(g *globals) *cobra.Command {
	var req replica.Protect
	var format string
	c := &cobra.Command{
		Use:   "enable-protection VM --disk PATH [--disk PATH ...] --target URL [--policy NAME]",
		Short: "Protect a VM: copy its disks to the target and make the first recovery point",
		Long: `Protect a VM: check its disks and the target, record it, copy each disk to
the target (skipping unallocated and all-zero ranges) and make the first
recovery point.

Targets: file:///PATH (a secondary-site directory) or azblob://ACCOUNT/CONTAINER.
Killed part way, the same command resumes the copy where it stopped; so
does the next asr replicate.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			req.VM = args[0]
			var err error
			if req.Format, err = vhd.ParseFormat(format); err != nil {
				return usageError{err}
			}
			return runEnable(c, g, req)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&req.Disks, "disk", nil, "a virtual disk of the VM (VHD or raw); repeat for each")
	f.StringVar(&req.Target, "target", "", "where the replica lives: file:///PATH or azblob://ACCOUNT/CONTAINER")
	f.StringVar(&req.Policy, "policy", "", "replication policy (default \"default\")")
	f.StringVar(&format, "format", "auto", "disk format: auto (VHD by content; raw only for .raw/.img), vhd or raw")
	c.MarkFlagRequired("disk")
	c.MarkFlagRequired("target")
	return c
}

func runEnable(c *cobra.Command, g *globals, req replica.Protect) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	job, err := e.EnableProtection(c.Context(), req)
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(jobOut(job))
	}
	g.say("%s: protected; %s copied in %s (job %d)", req.VM, bytesString(job.Bytes), job.Duration.Round(1e6), job.ID)
	return nil
}
