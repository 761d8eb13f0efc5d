package cmd

import (
	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

func newInitCmd(g *globals) *cobra.Command {
	var site string
	c := &cobra.Command{
		Use:   "init --site NAME",
		Short: "Create this site's state file with a default policy",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runInit(g, site)
		},
	}
	c.Flags().StringVar(&site, "site", "", "name of this site (required)")
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
