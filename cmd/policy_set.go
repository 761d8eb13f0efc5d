package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/vault"
)

func newPolicySetCmd(g *globals) *cobra.Command {
	var pf *policyFlags
	c := &cobra.Command{
		Use:   "set NAME [flags]",
		Short: "Change an existing replication policy's settings",
		Long: `Change an existing replication policy. Only the flags given change; the
others keep their current values (see asr policy list -o json). The flags
and their checks are those of asr policy create, applied to the result:
--freeze '' --thaw '' removes the hooks. VMs using the policy follow the
new settings from their next replicate cycle.

Exits 2 for a bad value (a retention of 0s or shorter than the frequency
among them; nothing is changed), 3 for an unknown policy.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if pf.apply(c.Flags(), &vault.Policy{}) == 0 { // counts the settings given
				return usageError{fmt.Errorf("policy set %s: give at least one setting to change, such as --retention 48h; see asr policy set --help", args[0])}
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			p, err := e.SetPolicy(args[0], func(p *vault.Policy) { pf.apply(c.Flags(), p) })
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(policyOut(p))
			}
			g.say("policy %s changed", p.Name)
			return nil
		},
	}
	pf = addPolicyFlags(c.Flags(), vault.Policy{})
	return c
}
