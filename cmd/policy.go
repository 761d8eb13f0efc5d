package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

func newPolicyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Create and list replication policies"}
	c.AddCommand(newPolicyCreateCmd(g), newPolicyListCmd(g))
	return c
}

func newPolicyCreateCmd(g *globals) *cobra.Command {
	p := replica.NewPolicy("")
	var bwWork, bwOther int64
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a replication policy",
		Long: `Create a replication policy.

App-consistent points need --freeze and --thaw commands; {vm} in them is
replaced by the VM's name, for example --freeze 'virsh domfsfreeze {vm}'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p.Name = args[0]
			p.BandwidthWork, p.BandwidthOther = bwWork<<20, bwOther<<20
			return runPolicyCreate(g, p)
		},
	}
	f := c.Flags()
	f.DurationVar(&p.Frequency, "frequency", p.Frequency, "copy frequency: 30s, 5m or 15m")
	f.DurationVar(&p.Retention, "retention", p.Retention, "how long recovery points are kept")
	f.DurationVar(&p.AppConsistentEvery, "app-consistent-every", p.AppConsistentEvery, "how often a point is app-consistent (needs --freeze/--thaw)")
	f.StringVar(&p.ResyncWindow, "resync-window", p.ResyncWindow, "local time window HH:MM-HH:MM when resyncs run")
	f.StringVar(&p.FreezeCommand, "freeze", "", "command that freezes the VM's file systems ({vm} is replaced)")
	f.StringVar(&p.ThawCommand, "thaw", "", "command that thaws them again")
	f.Int64Var(&bwWork, "bandwidth-work-hours", 0, "MiB/s limit Mon-Fri 08:00-18:00 (0 = none)")
	f.Int64Var(&bwOther, "bandwidth-other-hours", 0, "MiB/s limit at other times (0 = none)")
	return c
}

func runPolicyCreate(g *globals, p vault.Policy) error {
	if err := replica.CheckPolicy(p); err != nil {
		return usageError{err}
	}
	v, err := g.openVault()
	if err != nil {
		return err
	}
	err = v.Update(func(tx *vault.Tx) error {
		if _, err := tx.Policy(p.Name); err == nil {
			return fmt.Errorf("policy %q exists: %w", p.Name, vault.ErrExists)
		} else if !errors.Is(err, vault.ErrNotFound) {
			return err
		}
		return tx.PutPolicy(p)
	})
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(p)
	}
	g.say("policy %s created", p.Name)
	return nil
}

func newPolicyListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List replication policies",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			v, err := g.openVault()
			if err != nil {
				return err
			}
			var ps []vault.Policy
			if err := v.View(func(tx *vault.Tx) (err error) { ps, err = tx.Policies(); return }); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(ps)
			}
			var rows [][]string
			for _, p := range ps {
				app := "-"
				if p.FreezeCommand != "" {
					app = p.AppConsistentEvery.String()
				}
				rows = append(rows, []string{p.Name, p.Frequency.String(), p.Retention.String(), app, p.ResyncWindow})
			}
			g.table([]string{"POLICY", "FREQUENCY", "RETENTION", "APP-CONSISTENT", "RESYNC WINDOW"}, rows)
			return nil
		},
	}
}
