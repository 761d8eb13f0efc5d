package cmd

import (
	"fmt"
	"strconv"
	"time"

	"github.com/asr-project/asr/vault"
	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status [VM]",
		Short: "Show protected VMs: health, last recovery point, RPO, pending logs",
		Args:  cobra.MaximumNArgs(1),
		RunE:  func(c *cobra.Command, args []string) error { return runStatus(g, args) },
	}
}

func runStatus(g *globals, args []string) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	st, err := e.Statuses(args)
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(st)
	}
	now := time.Now()
	var rows [][]string
	for _, s := range st {
		rpo := "-"
		if !s.LastPointAt.IsZero() {
			rpo = s.RPO.String() + " / " + s.Frequency.String()
			if s.RPOMissed {
				rpo += " (missed)"
			}
		}
		next := "-"
		if !s.NextDue.IsZero() {
			next = s.NextDue.Local().Format(time.TimeOnly)
		}
		state := s.State
		switch s.State {
		case vault.StateInitialReplication:
			state += fmt.Sprintf(" %.0f%%", 100*s.Copied)
		case vault.StateResyncing:
			state += fmt.Sprintf(" %.0f%% (%s compared, %s sent)", 100*s.ResyncDone, bytesString(s.ResyncCompared), bytesString(s.ResyncSent))
		}
		if !s.ResyncAt.IsZero() && s.ResyncAt.After(now) && s.Health != vault.HealthCritical {
			state += ", runs at " + s.ResyncAt.Local().Format("15:04")
		}
		health := s.Health
		if s.HealthReason != "" {
			health += ": " + s.HealthReason
		}
		rows = append(rows, []string{s.VM, state, health, strconv.Itoa(len(s.Disks)), s.LastPoint,
			ago(s.LastPointAt, now), rpo, bytesString(s.PendingBytes), next})
	}
	g.table([]string{"VM", "STATE", "HEALTH", "DISKS", "LAST POINT", "AGE", "RPO / FREQ", "PENDING", "NEXT DUE"}, rows)
	return nil
}
