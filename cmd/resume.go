package cmd

import "github.com/spf13/cobra"

func newResumeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "resume VM [VM ...]",
		Short: "Clear a Critical VM after fixing its cause, and retry at once",
		Long: `A VM goes Critical on an error that retrying cannot fix: refused
credentials, a missing source disk, a broken disk chain, a disk that shrank.
Fix the cause, then run asr resume: it clears the failure and retries now (a
resync when one is pending, else a replicate cycle). If the cause is still
there the VM goes Critical again with the same message.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkVMs(args); err != nil {
				return err
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			res, err := e.Resume(c.Context(), args)
			return g.results(res, err, "resumed")
		},
	}
}
