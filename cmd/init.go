package cmd

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

func newInitCmd(g *globals) *cobra.Command {
	var site, role, url string
	c := &cobra.Command{
		Use:   "init --site NAME [--role primary|recovery --target URL]",
		Short: "Create this site's state file with a default policy",
		Long: `Create this site's state file with a default policy.

A primary (the default) protects VMs with enable-protection. A recovery site
(--role recovery --target URL) imports the VMs and points the target holds,
refreshed by asr sync, and fails over from them with the primary gone.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch {
			case role != "primary" && role != vault.RoleRecovery:
				return usageError{fmt.Errorf("--role %q: use primary or recovery", role)}
			case role == vault.RoleRecovery && url == "":
				return usageError{fmt.Errorf("--role recovery needs --target URL: the target it imports from")}
			case role == "primary" && url != "":
				return usageError{fmt.Errorf("--target is for --role recovery; a primary names its target at enable-protection")}
			}
			if role == vault.RoleRecovery {
				return runInitRecovery(c, g, site, url)
			}
			return runInit(g, site)
		},
	}
	c.Flags().StringVar(&site, "site", "", "name of this site (required)")
	c.Flags().StringVar(&role, "role", "primary", "primary or recovery")
	c.Flags().StringVar(&url, "target", "", "target a recovery site imports from (with --role recovery)")
	c.MarkFlagRequired("site")
	return c
}

func runInit(g *globals, site string) error {
	if err := initSite(g, site); err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(map[string]string{"site": site, "state": g.State})
	}
	g.say("site %s created; state in %s", site, g.State)
	return nil
}

// runInitRecovery opens the target before it creates anything, so a bad
// URL leaves no state file behind.
func runInitRecovery(c *cobra.Command, g *globals, site, url string) error {
	if err := replica.CheckName("site", site); err != nil {
		return usageError{err}
	}
	t, err := g.openTarget(c.Context(), url)
	if err != nil {
		return fmt.Errorf("open target %s: %w", url, err)
	}
	t.Close()
	if err := initSite(g, site); err != nil {
		return err
	}
	v, err := g.openVault()
	if err != nil {
		return err
	}
	err = v.Update(func(tx *vault.Tx) error {
		s, err := tx.Site()
		if err != nil {
			return err
		}
		s.Role, s.Target = vault.RoleRecovery, url
		return tx.PutSite(s)
	})
	if err == nil {
		err = g.sync(c, v, url)
	}
	if err != nil {
		// Nothing was imported: the same command can run again.
		os.Remove(g.State)
	}
	return err
}

// initSite creates the state file with the default policy.
func initSite(g *globals, site string) error {
	if err := replica.CheckName("site", site); err != nil {
		return usageError{err}
	}
	v, err := vault.Init(g.State, site, g.Timeout)
	if err != nil {
		return err
	}
	return v.Update(func(tx *vault.Tx) error { return tx.PutPolicy(replica.NewPolicy(replica.DefaultPolicy)) })
}
