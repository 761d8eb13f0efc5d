package cmd

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every command whose first argument is a VM completes VM names, and every
// --point and --policy flag completes; a new command missing from the
// table in addCompletions fails here.
func TestCompletionTableCoversCommands(t *testing.T) {
	root, _ := newRoot(&IO{})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		fields := strings.Fields(c.Use)
		if len(fields) > 1 && strings.HasPrefix(fields[1], "VM") && c.ValidArgsFunction == nil {
			t.Errorf("%s takes a VM but completes none", c.CommandPath())
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "point" && f.Name != "policy" {
				return
			}
			if _, ok := c.GetFlagCompletionFunc(f.Name); !ok {
				t.Errorf("%s --%s has no completion", c.CommandPath(), f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
