package cmd

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/vault"
)

func newJobsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "jobs [ID]",
		Short: "List jobs, or show one job's steps",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			v, err := g.openVault()
			if err != nil {
				return err
			}
			// Jobs whose process died still say Running until a run that
			// finds their lock free marks them Interrupted.
			if err := v.SweepJobs(); err != nil {
				return err
			}
			if len(args) == 1 {
				id, err := strconv.ParseUint(args[0], 10, 64)
				if err != nil {
					return usageError{fmt.Errorf("job ID %q: not a number", args[0])}
				}
				var j vault.Job
				if err := v.View(func(tx *vault.Tx) (err error) { j, err = tx.Job(id); return }); err != nil {
					return err
				}
				return showJob(g, j)
			}
			var jobs []vault.Job
			if err := v.View(func(tx *vault.Tx) (err error) { jobs, err = tx.Jobs(); return }); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(jobsOut(jobs))
			}
			var rows [][]string
			for _, j := range jobs {
				rows = append(rows, []string{strconv.FormatUint(j.ID, 10), j.Kind, j.VM, j.State,
					j.Started.Local().Format(time.DateTime), j.Duration.Round(time.Millisecond).String(), bytesString(j.Bytes), j.Error})
			}
			g.table([]string{"ID", "KIND", "VM", "STATE", "STARTED", "DURATION", "BYTES", "ERROR"}, rows)
			return nil
		},
	}
}

func showJob(g *globals, j vault.Job) error {
	if g.json() {
		return g.printJSON(jobOut(j))
	}
	g.say("job %d: %s of %s, %s", j.ID, j.Kind, j.VM, j.State)
	if j.Error != "" {
		g.say("error: %s", j.Error)
	}
	var rows [][]string
	for _, s := range j.Steps {
		prog := ""
		if s.Total > 0 {
			prog = fmt.Sprintf("%s / %s", bytesString(s.Done), bytesString(s.Total))
		}
		rows = append(rows, []string{s.Name, s.State, prog})
	}
	g.table([]string{"STEP", "STATE", "PROGRESS"}, rows)
	return nil
}
