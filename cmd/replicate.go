package cmd

import (
	"github.com/spf13/cobra"
)

func newReplicateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "replicate [VM ...]",
		Short: "Ship logs and make recovery points for VMs that are due (run from cron)",
		Long: `Replicate every protected VM whose copy frequency has elapsed (or the VMs
named): rotate their logs, apply them to the replica, snapshot, record the
recovery point, prune old points and delete the shipped logs. Interrupted
at any step, the next run finishes the job. Put it in cron every minute:

  * * * * * asr replicate --quiet`,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			res, err := e.Replicate(c.Context(), args)
			if g.json() {
				if jerr := g.printJSON(resultsOut(res)); jerr != nil {
					return jerr
				}
				if err != nil {
					return reportedError{exitCode(err)}
				}
				return nil
			}
			for _, r := range res {
				switch {
				case r.Point != "" && r.Err() == nil:
					g.say("%s: point %s, %s shipped in %s", r.VM, r.Point, bytesString(r.Bytes), r.Duration.Round(1e6))
				case r.Skipped != "":
					g.say("%s: skipped: %s", r.VM, r.Skipped)
				}
			}
			if len(res) == 0 && err == nil {
				g.say("no VM is protected on this site")
			}
			return err
		},
	}
}
