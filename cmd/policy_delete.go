package cmd

import (
	"github.com/spf13/cobra"
)

func newPolicyDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a replication policy no protected VM uses",
		Long: `Delete a replication policy. It is refused, and nothing changes, while any
protected VM uses the policy: the error names those VMs (disable their
protection first, or change the policy with asr policy set instead). The
check and the delete are one transaction. The default policy is never
deleted, since enable-protection uses it when no --policy is given; change
its settings with asr policy set default.

Exits 2 for the default policy, 3 for an unknown policy, 9 for a policy
still in use.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			if err := e.DeletePolicy(args[0]); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(struct {
					Policy  string `json:"policy"`
					Deleted bool   `json:"deleted"`
				}{args[0], true})
			}
			g.say("policy %s deleted", args[0])
			return nil
		},
	}
}
