package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/failover"
	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

func newSyncCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "sync",
		Short: "Refresh a recovery site's VMs and points from its target",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			v, err := g.openVault()
			if err != nil {
				return err
			}
			var site vault.Site
			if err := v.View(func(tx *vault.Tx) (err error) { site, err = tx.Site(); return }); err != nil {
				return err
			}
			if site.Role != vault.RoleRecovery {
				return fmt.Errorf("site %s is a primary: sync is for a recovery site (asr init --site NAME --role recovery --target URL): %w", site.Name, replica.ErrInvalid)
			}
			return g.sync(c, v, site.Target)
		},
	}
}

func (g *globals) sync(c *cobra.Command, v *vault.Vault, url string) error {
	t, err := g.openTarget(c.Context(), url)
	if err != nil {
		return fmt.Errorf("open target %s: %w", url, err)
	}
	defer t.Close()
	res, err := failover.Sync(c.Context(), v, t, url)
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(res)
	}
	g.say("synced %d VMs (%d new) and %d points from %s", len(res.VMs), len(res.Added), res.Points, url)
	if len(res.Plans) > 0 {
		g.say("recovery plans: %s", strings.Join(res.Plans, ", "))
	}
	return nil
}
