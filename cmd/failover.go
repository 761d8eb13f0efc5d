package cmd

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/failover"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/vault"
)

func newFailoverCmd(g *globals) *cobra.Command {
	var test, planned, unplanned, shutdownSource bool
	var point, dir string
	c := &cobra.Command{
		Use:   "failover VM --test|--planned|--unplanned [--point ID|latest|latest-app] [--dir DIR]",
		Short: "Bring a VM up at the recovery site from a recovery point",
		Long: `Bring a VM up at the recovery site from a recovery point.

  --test       disks from the point under <vm>-test, VM started isolated;
               replication goes on. asr failover cleanup VM removes it all.
  --planned    at the primary: shut the VM down, replicate its last writes,
               make the disks from that final point, start the VM there.
  --unplanned  from this site's state file and the target alone (the
               primary may be gone), to a point; says how much it loses.

The recovery disks are fixed VHDs in DIR/<vm> on a file target (DIR is --dir,
else recovery.dir, else "recovery" beside the state file); on Azure they are
page blobs recovery/<vm>/<disk> and DIR/<vm> gets an ARM template. The host
driver (host.driver) starts the VM; without one asr says what to start.
Then change-point switches to another point, and commit makes it final;
asr failback brings it home, asr reprotect protects it where it runs.
Killed anywhere, the same command run again finishes the job.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			n := 0
			for _, b := range []bool{test, planned, unplanned} {
				if b {
					n++
				}
			}
			if n != 1 {
				return usageError{fmt.Errorf("give one of --test, --planned or --unplanned")}
			}
			if planned && c.Flags().Changed("point") {
				return usageError{fmt.Errorf("--planned fails over to the final point it makes; --point is for --test and --unplanned")}
			}
			if shutdownSource && !unplanned {
				return usageError{fmt.Errorf("--shutdown-source is for --unplanned (a planned failover always shuts the source down)")}
			}
			r, err := g.failover()
			if err != nil {
				return err
			}
			var res failover.Result
			switch {
			case test:
				res, err = r.Test(c.Context(), args[0], point, dir)
			case planned:
				res, err = r.Planned(c.Context(), args[0], dir)
			default:
				res, err = r.Unplanned(c.Context(), args[0], point, dir, shutdownSource)
			}
			return g.failoverResult(res, err)
		},
	}
	f := c.Flags()
	f.BoolVar(&test, "test", false, "test failover: isolated copy, replication goes on")
	f.BoolVar(&planned, "planned", false, "planned failover, no data loss (at the primary)")
	f.BoolVar(&unplanned, "unplanned", false, "unplanned failover from the target alone")
	f.BoolVar(&shutdownSource, "shutdown-source", false, "try to shut the source VM down first (--unplanned)")
	f.StringVar(&point, "point", "latest", "recovery point ID, latest or latest-app")
	f.StringVar(&dir, "dir", "", "recovery folder (default recovery.dir)")
	c.AddCommand(newFailoverCleanupCmd(g), newFailoverChangePointCmd(g), newFailoverCommitCmd(g))
	return c
}

func newFailoverCleanupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cleanup VM",
		Short: "Remove a test failover: its VM, disks and the folder it made",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := g.failover()
			if err != nil {
				return err
			}
			res, err := r.Cleanup(c.Context(), args[0])
			return g.failoverResult(res, err)
		},
	}
}

func newFailoverChangePointCmd(g *globals) *cobra.Command {
	var point string
	c := &cobra.Command{
		Use:   "change-point VM --point ID|latest|latest-app",
		Short: "Switch a failed-over VM to another recovery point before commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := g.failover()
			if err != nil {
				return err
			}
			res, err := r.ChangePoint(c.Context(), args[0], point)
			return g.failoverResult(res, err)
		},
	}
	c.Flags().StringVar(&point, "point", "", "recovery point ID, latest or latest-app (required)")
	c.MarkFlagRequired("point")
	return c
}

func newFailoverCommitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "commit VM",
		Short: "Make a failover final: the VM's other recovery points are deleted",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := g.failover()
			if err != nil {
				return err
			}
			res, err := r.Commit(c.Context(), args[0])
			return g.failoverResult(res, err)
		},
	}
}

// failover builds the failover runner on this site.
func (g *globals) failover() (*failover.Runner, error) {
	e, err := g.engine()
	if err != nil {
		return nil, err
	}
	ev := &events{g: g}
	return &failover.Runner{Engine: e, Host: g.itemHost, Dir: g.recoveryDir(),
		Progress: func(disk string, done, total int64) { ev.Progress("", "recovery disk "+disk, done, total) }}, nil
}

// recoveryDir is recovery.dir, else "recovery" beside the state file.
func (g *globals) recoveryDir() string {
	if d := g.v.GetString("recovery.dir"); d != "" {
		return d
	}
	return filepath.Join(filepath.Dir(g.State), "recovery")
}

// itemHost is the site's host driver with the VM's overrides (asr vm set).
func (g *globals) itemHost(it vault.Item) (host.Host, string, error) {
	cfg := g.hostConfig()
	if m := it.Machine; m != nil {
		for _, o := range []struct {
			dst *string
			v   string
		}{
			{&cfg.Driver, m.Driver}, {&cfg.Shutdown, m.Shutdown}, {&cfg.Start, m.Start},
			{&cfg.Freeze, m.Freeze}, {&cfg.Thaw, m.Thaw}, {&cfg.TestNetwork, m.TestNetwork},
		} {
			if o.v != "" {
				*o.dst = o.v
			}
		}
	}
	h, err := host.New(cfg)
	if err != nil {
		return nil, "", usageError{err}
	}
	return h, cfg.Driver, nil
}

func (g *globals) failoverResult(res failover.Result, err error) error {
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(res)
	}
	switch {
	case res.Kind == failover.KindTest && res.Removed == nil:
		g.say("%s: test failover as %s from point %s (%s); %s replicates on", res.VM, res.Name, res.Point, res.PointTime.Local().Format(time.DateTime), res.VM)
	case res.Point != "":
		g.say("%s: %s; point %s (%s)", res.VM, res.State, res.Point, res.PointTime.Local().Format(time.DateTime))
	default:
		g.say("%s: %s", res.VM, res.State)
	}
	if !res.LastWrite.IsZero() {
		if res.Loss > 0 {
			g.say("data-loss window: %s (the newest write the target heard of is from %s)", res.Loss.Round(time.Second), res.LastWrite.Local().Format(time.DateTime))
		} else {
			g.say("data-loss window: none (no write the target heard of is newer than the point)")
		}
	}
	for _, d := range res.Disks {
		g.say("recovery disk %s", d)
	}
	if res.Template != "" {
		g.say("ARM template %s", res.Template)
	}
	if res.Host != "" {
		g.say("%s", res.Host)
	}
	for _, r := range res.Removed {
		g.say("removed %s", r)
	}
	for _, n := range res.Notes {
		g.say("%s", n)
	}
	return nil
}
