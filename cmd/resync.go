package cmd

import (
	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
)

func newResyncCmd(g *globals) *cobra.Command {
	var full bool
	c := &cobra.Command{
		Use:   "resync VM [VM ...]",
		Short: "Bring replicas back to their sources by block checksums, now",
		Long: `Resync compares each disk of a VM with its replica in fixed 64 KiB blocks
and sends only the blocks that differ, then ships the writes made meanwhile
and records a new recovery point. Only the blocks the tracker marked are
compared when it kept a record (a narrowed resync); otherwise every block.
The VM keeps running and being tracked throughout, and every earlier
recovery point stays exportable.

From cron, asr replicate starts or resumes a pending resync by itself inside
the policy's resync window (default 18:30-06:00); asr resync runs it now.
Interrupted (kill, network outage), it goes on from its checkpoint. On a
Protected VM it compares every block, for an operator who wants to be sure.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkVMs(args); err != nil {
				return err
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			res, err := e.Resync(c.Context(), args, full)
			return g.results(res, err, "resynced")
		},
	}
	c.Flags().BoolVar(&full, "full", false, "compare every block, even where the tracker's record narrows the resync")
	return c
}

// checkVMs refuses a VM name that can't be one, before anything opens.
func checkVMs(names []string) error {
	for _, vm := range names {
		if err := replica.CheckName("VM", vm); err != nil {
			return usageError{err}
		}
	}
	return nil
}

// results prints what a resync or resume did, one line per VM, or JSON.
func (g *globals) results(res []replica.Result, err error, verb string) error {
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
		case r.Skipped != "":
			g.say("%s: skipped: %s", r.VM, r.Skipped)
		case r.Err() == nil:
			g.say("%s: %s, %s sent, point %s, in %s", r.VM, verb, bytesString(r.Bytes), r.Point, r.Duration.Round(1e6))
		}
	}
	return err
}
