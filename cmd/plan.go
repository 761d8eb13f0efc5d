package cmd

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/failover"
	"github.com/asr-project/asr/vault"
)

func newPlanCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "plan",
		Short: "Recovery plans: fail whole applications over and back, group by group",
		Long: `A recovery plan fails VMs over in groups: group 1 first, then group 2, and
so on; the VMs of a group in parallel. Each group may have a pre command
(before its VMs) and a post command (after them). In a command, {plan} is the
plan's name, {group} the group's number (1, 2, ...) and {vm} a VM's name; a
command holding {vm} runs once per VM of the group, in parallel, else once
for the group. Each runs with /bin/sh -c and is killed after --timeout.

A plan is kept in the state file and on the target of each of its VMs, so a
recovery site imports it (asr init --role recovery, asr sync) and runs it with
the primary gone. A run stops at the first step that fails, says which, and
exits with that step's code; the same command run again resumes at that step
(groups done, and their commands, are not run again), also after a kill -9.
plan failback fails the groups back last group first.`,
	}
	c.AddCommand(newPlanCreateCmd(g), newPlanListCmd(g), newPlanShowCmd(g), newPlanDeleteCmd(g),
		newPlanFailoverCmd(g), newPlanFailbackCmd(g))
	return c
}

func newPlanCreateCmd(g *globals) *cobra.Command {
	var spec failover.PlanSpec
	var groups []string
	c := &cobra.Command{
		Use:   "create NAME --group VM[,VM...] [--group ...] [--pre CMD] [--post CMD] [--timeout D]",
		Short: "Create a recovery plan",
		Long: `Create a recovery plan: one --group per group, in failover order.

--pre and --post given once apply to every group; given as many times as
--group, the k-th belongs to group k. Any other count is refused.

Exits 2 for a bad name or value, a VM given twice or a wrong count of --pre
or --post, 3 for a VM not protected at this site, 9 when the plan exists,
7 when a target can't be written.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			spec.Name = args[0]
			for _, gr := range groups {
				spec.Groups = append(spec.Groups, strings.Split(gr, ","))
			}
			if spec.Timeout <= 0 {
				return usageError{fmt.Errorf("--timeout %s: give a duration above zero, such as 5m", spec.Timeout)}
			}
			p, err := g.plans()
			if err != nil {
				return err
			}
			pl, err := p.Create(c.Context(), spec)
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(planOut(pl))
			}
			g.say("plan %s created: %d groups, copied to %s", pl.Name, len(pl.Groups), strings.Join(pl.Targets, ", "))
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&groups, "group", nil, "VMs of the next group, comma-separated (required; once per group)")
	f.StringArrayVar(&spec.Pre, "pre", nil, "command run before a group's VMs (once: every group; once per group: in order)")
	f.StringArrayVar(&spec.Post, "post", nil, "command run after a group's VMs (as --pre)")
	f.DurationVar(&spec.Timeout, "timeout", failover.DefaultPlanTimeout, "how long each pre or post command may run")
	c.MarkFlagRequired("group")
	return c
}

func newPlanListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List recovery plans and their last runs",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			pls, err := g.readPlans("")
			if err != nil {
				return err
			}
			if g.json() {
				out := []planJSON{}
				for _, pl := range pls {
					out = append(out, planOut(pl))
				}
				return g.printJSON(out)
			}
			var rows [][]string
			for _, pl := range pls {
				var gs []string
				for i, gr := range pl.Groups {
					gs = append(gs, fmt.Sprintf("%d: %s", i+1, strings.Join(gr.VMs, ",")))
				}
				rows = append(rows, []string{pl.Name, strings.Join(gs, "  "), pl.Timeout.String(), lastRun(pl)})
			}
			g.table([]string{"PLAN", "GROUPS", "TIMEOUT", "LAST RUN"}, rows)
			return nil
		},
	}
}

func newPlanShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a recovery plan: its groups, commands and last run",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			pls, err := g.readPlans(args[0])
			if err != nil {
				return err
			}
			pl := pls[0]
			if g.json() {
				return g.printJSON(planOut(pl))
			}
			g.say("plan %s: %d groups; commands time out after %s; on %s", pl.Name, len(pl.Groups), pl.Timeout, strings.Join(pl.Targets, ", "))
			var rows [][]string
			for i, gr := range pl.Groups {
				rows = append(rows, []string{fmt.Sprint(i + 1), strings.Join(gr.VMs, ","), orDash(gr.Pre), orDash(gr.Post)})
			}
			g.table([]string{"GROUP", "VMS", "PRE", "POST"}, rows)
			g.say("last run: %s", lastRun(pl))
			if r := pl.Run; r != nil && !r.Finished {
				if r.Error != "" {
					g.say("stopped: %s", r.Error)
				}
				g.say("resume it with %s", failover.RunCommand(pl.Name, r.Kind))
			}
			return nil
		},
	}
}

func newPlanDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a recovery plan from this site and its targets",
		Long: `Delete a recovery plan from its targets, then from this site. The VMs and
their failovers are left as they are.

Exits 3 for an unknown plan, 7 when a target can't be written.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p, err := g.plans()
			if err != nil {
				return err
			}
			if _, err := p.Delete(c.Context(), args[0]); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(struct {
					Plan    string `json:"plan"`
					Deleted bool   `json:"deleted"`
				}{args[0], true})
			}
			g.say("plan %s deleted", args[0])
			return nil
		},
	}
}

func newPlanFailoverCmd(g *globals) *cobra.Command {
	var test, planned, unplanned bool
	var point, dir string
	c := &cobra.Command{
		Use:   "failover NAME --test|--planned|--unplanned [--point latest|latest-app] [--dir DIR]",
		Short: "Fail a recovery plan's VMs over, group by group",
		Long: `Fail a recovery plan's VMs over, group by group, as asr failover VM does
for one VM (--test, --planned or --unplanned; --point and --dir as there).

A failed step stops the plan; the error names the group and the step (pre
command, failover of VM X, post command) and the exit code is that step's
(13 for a refused failover, 1 for a failed command). The same command run
again resumes at that step; a run of another kind is refused (13) until it
has finished.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var kind string
			n := 0
			for k, on := range map[string]bool{failover.KindTest: test, failover.KindPlanned: planned, failover.KindUnplanned: unplanned} {
				if on {
					kind, n = k, n+1
				}
			}
			if n != 1 {
				return usageError{fmt.Errorf("give one of --test, --planned or --unplanned")}
			}
			if planned && point != "" {
				return usageError{fmt.Errorf("--planned fails over to the final point it makes; --point is for --test and --unplanned")}
			}
			if point != "" && point != "latest" && point != "latest-app" {
				return usageError{fmt.Errorf("--point %q: a plan fails over to latest or latest-app", point)}
			}
			return g.runPlan(c, args[0], kind, point, dir)
		},
	}
	f := c.Flags()
	f.BoolVar(&test, "test", false, "test failover: isolated copies, replication goes on")
	f.BoolVar(&planned, "planned", false, "planned failover, no data loss (at the primary)")
	f.BoolVar(&unplanned, "unplanned", false, "unplanned failover from the target alone")
	f.StringVar(&point, "point", "", "latest (the default) or latest-app")
	f.StringVar(&dir, "dir", "", "recovery folder (default recovery.dir)")
	return c
}

func newPlanFailbackCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "failback NAME",
		Short: "Fail a recovery plan's VMs back, last group first",
		Long: `Fail a recovery plan's VMs back to the primary as asr failback VM does, the
groups in reverse order (the last group first), each with its pre and post
commands ({group} keeps the group's number). Stops and resumes as plan
failover does.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.runPlan(c, args[0], failover.KindFailback, "", "")
		},
	}
}

// plans builds the plan runner of this site.
func (g *globals) plans() (*failover.Plans, error) {
	r, err := g.failover()
	if err != nil {
		return nil, err
	}
	return &failover.Plans{Vault: r.Engine.Vault, OpenTarget: r.Engine.OpenTarget, VMs: r}, nil
}

// readPlans reads one plan, or all when name is "".
func (g *globals) readPlans(name string) ([]vault.Plan, error) {
	v, err := g.openVault()
	if err != nil {
		return nil, err
	}
	var pls []vault.Plan
	err = v.View(func(tx *vault.Tx) error {
		if name == "" {
			pls, err = tx.Plans()
			return err
		}
		pl, err := tx.Plan(name)
		pls = append(pls, pl)
		return err
	})
	return pls, err
}

// runPlan runs or resumes a plan, a line per step as it is done.
func (g *globals) runPlan(c *cobra.Command, name, kind, point, dir string) error {
	p, err := g.plans()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	p.Step = func(st failover.PlanStep) {
		mu.Lock()
		defer mu.Unlock()
		g.say("%s", stepLine(st))
	}
	res, err := p.Run(c.Context(), name, kind, point, dir)
	if res.Abandoned != "" {
		g.say("plan %s: gave up %s", name, res.Abandoned)
	}
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(planResultOut(res))
	}
	what := kind + " failover"
	if kind == failover.KindFailback {
		what = "failback"
	}
	g.say("plan %s: %s done", name, what)
	return nil
}

func stepLine(st failover.PlanStep) string {
	who := ""
	if st.VM != "" {
		who = " " + st.VM
	}
	switch {
	case st.Note != "":
		return fmt.Sprintf("group %d: %s%s: %s", st.Group, st.Step, who, st.Note)
	case st.Command != "":
		return fmt.Sprintf("group %d: %s command%s ran: %s", st.Group, st.Step, who, st.Command)
	case st.Failback != nil:
		return fmt.Sprintf("group %d: failback%s: %s", st.Group, who, st.Failback.State)
	case st.Result != nil && st.Result.Kind == failover.KindTest:
		return fmt.Sprintf("group %d: test failover%s as %s from point %s", st.Group, who, st.Result.Name, st.Result.Point)
	case st.Result != nil:
		return fmt.Sprintf("group %d: failover%s: %s; point %s", st.Group, who, st.Result.State, st.Result.Point)
	}
	return fmt.Sprintf("group %d: %s%s", st.Group, st.Step, who)
}

// lastRun describes a plan's latest run in a few words.
func lastRun(pl vault.Plan) string {
	r := pl.Run
	switch {
	case r == nil:
		return "-"
	case r.Finished:
		return fmt.Sprintf("%s, finished %s", r.Kind, r.Ended.Local().Format(time.DateTime))
	case r.Error != "":
		return fmt.Sprintf("%s, stopped at group %d (%s)", r.Kind, failover.NextGroup(pl), r.Phase)
	}
	return fmt.Sprintf("%s, unfinished at group %d (%s)", r.Kind, failover.NextGroup(pl), r.Phase)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
