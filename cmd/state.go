package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/vault"
)

// newStateCmd is `asr state`. Its subcommands live in their own files:
// check here, rebuild beside it.
func newStateCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "state",
		Short: "Check or rebuild this site's state file",
	}
	c.AddCommand(newStateCheckCmd(g), newStateRebuildCmd(g))
	return c
}

func newStateCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Verify the state file: every page, every record, the schema",
		Long: `Verify the state file fully: its bbolt structure (bbolt's own check, with
every page read), its schema version, and that every record decodes. The file
is opened read only; nothing is changed. A damaged meta page that bbolt fell
back from is reported as a warning.

Exits 0 when the file is sound, 4 when there is none, 5 when another asr
process holds it, 10 when it is damaged, is not a state file, can't be read,
or was written by a newer asr.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runStateCheck(g) },
	}
}

func runStateCheck(g *globals) error {
	r, err := vault.Check(g.State)
	if g.json() {
		// The report goes out either way; the error still sets the exit
		// code and its line on stderr.
		if perr := g.printJSON(r); err == nil {
			err = perr
		}
		return err
	}
	if err != nil {
		return err
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(g.io.Err, "asr: warning: %s\n", w)
	}
	g.say("state file %s is sound: %d VMs, %d recovery points, %d jobs, %d policies", r.Path, r.Items, r.Points, r.Jobs, r.Policies)
	return nil
}
