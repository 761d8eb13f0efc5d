package cmd

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

// Shell completion. Cobra's completion command prints a shell's script
// (source <(asr completion bash)); the script runs the hidden __complete
// command, which calls the functions here. addCompletions is the one table
// of what each command completes.
//
// The functions read the state file in one read-only transaction and wait
// at most completeTimeout for its lock, so a shell never hangs behind a
// running asr. Any error (no site, a damaged or busy state file, a bad
// config) completes nothing, never file names.

// completeTimeout bounds the wait for the site lock (or --lock-timeout,
// when shorter).
const completeTimeout = 500 * time.Millisecond

const noFiles = cobra.ShellCompDirectiveNoFileComp

// addCompletions sets the completion functions of root's commands: VM
// names where a command takes VMs, policy names, point IDs for --point,
// and no file names where an argument is not a file.
func addCompletions(g *globals, root *cobra.Command) {
	vm := onlyFirst(g.completeVMs)
	plan := onlyFirst(g.completePlans)
	args := map[string]cobra.CompletionFunc{
		"status": vm, "points": vm, "points export": vm, "verify": vm, "track": vm, "untrack": vm,
		"disable-protection": vm,
		"replicate":          g.completeVMs, "resync": g.completeVMs, "resume": g.completeVMs,
		"policy set": onlyFirst(g.completePolicies), "policy delete": onlyFirst(except(g.completePolicies, replica.DefaultPolicy)),
		"enable-protection": cobra.NoFileCompletions, "policy create": cobra.NoFileCompletions,
		"jobs": cobra.NoFileCompletions, "sync": cobra.NoFileCompletions,
		"failover": vm, "failover cleanup": vm, "failover change-point": vm, "failover commit": vm, "vm set": vm,
		"failback": vm, "failback commit": vm, "reprotect": vm,
		"plan show": plan, "plan delete": plan, "plan failover": plan, "plan failback": plan,
		"plan create": cobra.NoFileCompletions, "plan list": cobra.NoFileCompletions,
	}
	for path, fn := range args {
		command(root, path).ValidArgsFunction = fn
	}
	flags := []struct {
		cmd, flag string
		fn        cobra.CompletionFunc
	}{
		{"verify", "point", g.completePoints},
		{"points export", "point", g.completePoints},
		{"failover", "point", g.completePoints},
		{"failover change-point", "point", g.completePoints},
		{"enable-protection", "policy", g.completePolicies},
		{"plan failover", "point", cobra.FixedCompletions([]cobra.Completion{"latest", "latest-app"}, noFiles)},
		{"", "output", cobra.FixedCompletions([]cobra.Completion{"table", "json"}, noFiles)},
	}
	for _, f := range flags {
		if err := command(root, f.cmd).RegisterFlagCompletionFunc(f.flag, f.fn); err != nil {
			panic(err)
		}
	}
}

// command finds a command by its path below root ("" is root itself); an
// unknown path is a bug in the table above, found by any test.
func command(root *cobra.Command, path string) *cobra.Command {
	if path == "" {
		return root
	}
	c, rest, err := root.Find(strings.Fields(path))
	if err != nil || len(rest) > 0 || c.CommandPath() != root.Name()+" "+path {
		panic(fmt.Sprintf("completion table: no command %q", path))
	}
	return c
}

// isCompleteCmd reports cobra's hidden completion request command, which
// loads no settings itself: the completion functions load them for the
// command being completed, whose flags (--state, --config) are parsed.
func isCompleteCmd(c *cobra.Command) bool {
	return c.Name() == cobra.ShellCompRequestCmd || c.Name() == cobra.ShellCompNoDescRequestCmd
}

// onlyFirst completes the first argument with fn and nothing after it.
func onlyFirst(fn cobra.CompletionFunc) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, noFiles
		}
		return fn(c, args, prefix)
	}
}

// except leaves name out of fn's completions: the default policy, which
// policy delete refuses.
func except(fn cobra.CompletionFunc, name string) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		out, dir := fn(c, args, prefix)
		return slices.DeleteFunc(out, func(s cobra.Completion) bool { return strings.SplitN(s, "\t", 2)[0] == name }), dir
	}
}

// completeView loads the settings of the command being completed and runs
// fn in a read-only transaction on its state file.
func (g *globals) completeView(c *cobra.Command, fn func(*vault.Tx) error) error {
	if err := g.load(c, g.config); err != nil {
		return err
	}
	v, err := vault.Open(g.State, min(g.Timeout, completeTimeout))
	if err != nil {
		return err
	}
	return v.View(fn)
}

// completeVMs completes protected VM names not already on the command
// line, described by state and health.
func (g *globals) completeVMs(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	err := g.completeView(c, func(tx *vault.Tx) error {
		items, err := tx.Items()
		for _, it := range items {
			if strings.HasPrefix(it.VM, prefix) && !slices.Contains(args, it.VM) {
				out = append(out, cobra.CompletionWithDesc(it.VM, it.State+", "+it.Health))
			}
		}
		return err
	})
	if err != nil {
		return nil, noFiles
	}
	return out, noFiles
}

// completePolicies completes policy names, described by frequency and
// retention.
func (g *globals) completePolicies(c *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	err := g.completeView(c, func(tx *vault.Tx) error {
		ps, err := tx.Policies()
		for _, p := range ps {
			if strings.HasPrefix(p.Name, prefix) {
				out = append(out, cobra.CompletionWithDesc(p.Name, "every "+p.Frequency.String()+", kept "+p.Retention.String()))
			}
		}
		return err
	})
	if err != nil {
		return nil, noFiles
	}
	return out, noFiles
}

// completePoints completes "latest" and the recovery point IDs of the VM
// named by the first argument, described by time and kind.
func (g *globals) completePoints(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, noFiles
	}
	var out []cobra.Completion
	if strings.HasPrefix("latest", prefix) {
		out = append(out, cobra.CompletionWithDesc("latest", "the newest point"))
	}
	err := g.completeView(c, func(tx *vault.Tx) error {
		pts, err := tx.Points(args[0])
		for _, p := range pts {
			kind := "crash-consistent"
			if p.AppConsistent {
				kind = "app-consistent"
			}
			if strings.HasPrefix(p.ID, prefix) {
				out = append(out, cobra.CompletionWithDesc(p.ID, p.Time.Local().Format(time.DateTime)+", "+kind))
			}
		}
		return err
	})
	if err != nil {
		return nil, noFiles
	}
	return out, noFiles
}

// completePlans completes recovery plan names, described by their groups.
func (g *globals) completePlans(c *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	err := g.completeView(c, func(tx *vault.Tx) error {
		pls, err := tx.Plans()
		for _, p := range pls {
			if strings.HasPrefix(p.Name, prefix) {
				out = append(out, cobra.CompletionWithDesc(p.Name, fmt.Sprintf("%d groups", len(p.Groups))))
			}
		}
		return err
	})
	if err != nil {
		return nil, noFiles
	}
	return out, noFiles
}
