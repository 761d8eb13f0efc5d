package cmd

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var opt replica.VerifyOptions
	var sample string
	c := &cobra.Command{
		Use:   "verify VM [--point ID|latest] [--sample N%]",
		Short: "Prove a replica: read the newest point back and compare it with the source",
		Long: `Verify reads the VM's newest recovery point back from the target and compares
it, block by block, with the source disks (blocks the VM wrote after the
point are left out: they ship with the next one) and, on Azure, with the
replica's checksum map. It lists every differing range and exits 11 when any
differs, marking the VM for a resync of those blocks. --sample 5% checks a
random 5% of the blocks, for a cheap nightly job; a difference found by a
sample marks every block for the resync.

Only the newest point can be compared with the source, since the writes made
after older points are no longer kept.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if sample != "" {
				v, err := strconv.ParseFloat(strings.TrimSuffix(sample, "%"), 64)
				if err != nil || v <= 0 || v > 100 {
					return usageError{fmt.Errorf("--sample %q: give a percentage such as 5%%, above 0 and at most 100", sample)}
				}
				opt.Sample = v
			}
			if err := replica.CheckName("VM", args[0]); err != nil {
				return usageError{err}
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			rep, err := e.Verify(c.Context(), args[0], opt)
			if rep == nil {
				return err
			}
			if g.json() {
				if jerr := g.printJSON(rep); jerr != nil {
					return jerr
				}
				if err != nil {
					return reportedError{exitCode(err)}
				}
				return nil
			}
			for _, d := range rep.Disks {
				g.say("%s: disk %s: %s compared with the source at point %s, %s skipped (written since)",
					rep.VM, d.Name, bytesString(d.Compared), rep.Point, bytesString(d.Skipped))
				for _, x := range d.Differ {
					g.say("%s: disk %s: differs at %d-%d (%s)", rep.VM, d.Name, x.Off, x.Off+x.Len, bytesString(x.Len))
				}
				for _, x := range d.MapDiffer {
					g.say("%s: disk %s: checksum map disagrees at %d-%d", rep.VM, d.Name, x.Off, x.Off+x.Len)
				}
			}
			if err == nil {
				g.say("%s: point %s verified", rep.VM, rep.Point)
			}
			return err
		},
	}
	c.Flags().StringVar(&opt.Point, "point", "latest", "the point to verify: latest, or its ID")
	c.Flags().StringVar(&sample, "sample", "", "check only this percentage of blocks, chosen at random (e.g. 5%)")
	return c
}
