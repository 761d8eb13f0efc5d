package cmd

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

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
		return g.printJSON(statusOut(st))
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
		case vault.StateFailoverInProgress:
			state += fmt.Sprintf(" (%s, next: %s)", s.Failover.Kind, s.Failover.Step)
		case vault.StateFailedOver:
			state += " to " + s.Failover.Point + " (awaiting commit)"
		case vault.StateFailbackInProgress:
			state += fmt.Sprintf(" (next: %s, %s sent)", s.Failback.Step, bytesString(s.Failback.Sent()))
		case vault.StateFailedBack:
			state += " (awaiting failback commit)"
		}
		if s.Test != nil {
			state += ", test failover " + s.Test.Name
		}
		if !s.ResyncAt.IsZero() && s.ResyncAt.After(now) && s.Health != vault.HealthCritical {
			state += ", runs at " + s.ResyncAt.Local().Format("15:04")
		}
		rows = append(rows, []string{s.VM, state, s.Health, strconv.Itoa(len(s.Disks)), s.LastPoint,
			ago(s.LastPointAt, now), rpo, bytesString(s.PendingBytes), next, s.HealthReason})
	}
	headers := []string{"VM", "STATE", "HEALTH", "DISKS", "LAST POINT", "AGE", "RPO / FREQ", "PENDING", "NEXT DUE", "REASON"}
	fitLastColumn(headers, rows, g.io.Width)
	g.table(headers, rows)
	if len(args) == 1 && len(st) == 1 && st[0].HealthReason != "" {
		g.say("%s: %s: %s", st[0].VM, st[0].Health, st[0].HealthReason)
	}
	return nil
}

// fitLastColumn cuts the last cell of each row so the table fits a
// terminal width columns wide (0: no terminal, nothing is cut). Each cell
// takes its width plus 3 for the table's borders and padding.
func fitLastColumn(headers []string, rows [][]string, width int) {
	if width <= 0 {
		return
	}
	n := len(headers)
	used := 1
	for c := 0; c < n-1; c++ {
		w := len(headers[c])
		for _, r := range rows {
			w = max(w, utf8.RuneCountInString(r[c]))
		}
		used += w + 3
	}
	room := max(12, width-used-3)
	for _, r := range rows {
		if last := []rune(r[n-1]); len(last) > room {
			r[n-1] = string(last[:room-1]) + "…"
		}
	}
}
