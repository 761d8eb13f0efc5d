package cmd

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/failover"
	"github.com/asr-project/asr/replica"
)

func newStateRebuildCmd(g *globals) *cobra.Command {
	var targets []string
	var site string
	c := &cobra.Command{
		Use:   "rebuild --target URL [--target URL ...] [--site NAME]",
		Short: "Rebuild a lost or damaged state file from what the targets hold",
		Long: `Rebuild this site's state file from the targets: every VM whose manifest
names this site, its policy and its recovery points. Replication goes on
from the newest point; nothing is copied again. A sound state file is
refused; a damaged one is moved aside to <state>.damaged-<time>, never
written. Jobs are not on the target and start empty.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if site != "" {
				if err := replica.CheckName("site", site); err != nil {
					return usageError{err}
				}
			}
			e := &replica.Engine{OpenTarget: g.openTarget, Events: &events{g: g}}
			res, err := replica.Rebuild(c.Context(), e, g.State, site, targets, g.Timeout)
			if err != nil {
				return err
			}
			v, err := g.openVault()
			if err != nil {
				return err
			}
			if res.Plans, err = failover.RestorePlans(c.Context(), v, g.openTarget, targets, res.Site); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(res)
			}
			if res.MovedAside != "" {
				g.say("damaged state file moved to %s", res.MovedAside)
			}
			g.say("state file %s rebuilt for site %s: %d VM(s), %d recovery point(s)", res.State, res.Site, len(res.VMs), res.Points)
			if len(res.Plans) > 0 {
				g.say("recovery plans: %s", strings.Join(res.Plans, ", "))
			}
			for _, vm := range res.Resync {
				g.say("%s: the target did not record where its logs stood; it needs a resync", vm)
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&targets, "target", nil, "a target this site replicates to; repeat for each")
	c.Flags().StringVar(&site, "site", "", "the site to rebuild (default: the one the manifests name)")
	c.MarkFlagRequired("target")
	return c
}
