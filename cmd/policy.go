package cmd

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

func newPolicyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Create, change, delete and list replication policies"}
	c.AddCommand(newPolicyCreateCmd(g), newPolicySetCmd(g), newPolicyDeleteCmd(g), newPolicyListCmd(g))
	return c
}

// policyFlags are the settings flags policy create and policy set share:
// one definition, so both accept and check the same values.
type policyFlags struct {
	p               vault.Policy // what the flags parse into
	bwWork, bwOther int64        // MiB/s
}

// addPolicyFlags defines the settings flags on f with the defaults in def
// (create shows the new-policy defaults; set shows none, since a flag
// not given keeps the policy's current value).
func addPolicyFlags(f *pflag.FlagSet, def vault.Policy) *policyFlags {
	pf := &policyFlags{}
	f.DurationVar(&pf.p.Frequency, "frequency", def.Frequency, "copy frequency: 30s, 5m or 15m")
	f.DurationVar(&pf.p.Retention, "retention", def.Retention, "how long recovery points are kept; at least the frequency")
	f.DurationVar(&pf.p.AppConsistentEvery, "app-consistent-every", def.AppConsistentEvery, "how often a point is app-consistent (needs --freeze/--thaw, or host.freeze/host.thaw)")
	f.StringVar(&pf.p.ResyncWindow, "resync-window", def.ResyncWindow, "local time window HH:MM-HH:MM when resyncs run")
	f.StringVar(&pf.p.FreezeCommand, "freeze", def.FreezeCommand, "command that freezes the VM's file systems ({vm} is replaced)")
	f.StringVar(&pf.p.ThawCommand, "thaw", def.ThawCommand, "command that thaws them again")
	f.Int64Var(&pf.bwWork, "bandwidth-work-hours", def.BandwidthWork>>20, "MiB/s limit Mon-Fri 08:00-18:00 (0 = none)")
	f.Int64Var(&pf.bwOther, "bandwidth-other-hours", def.BandwidthOther>>20, "MiB/s limit at other times (0 = none)")
	return pf
}

// apply copies the flags given on the command line into p and returns how
// many there were; the others leave p as it is.
func (pf *policyFlags) apply(f *pflag.FlagSet, p *vault.Policy) (n int) {
	set := map[string]func(){
		"frequency":             func() { p.Frequency = pf.p.Frequency },
		"retention":             func() { p.Retention = pf.p.Retention },
		"app-consistent-every":  func() { p.AppConsistentEvery = pf.p.AppConsistentEvery },
		"resync-window":         func() { p.ResyncWindow = pf.p.ResyncWindow },
		"freeze":                func() { p.FreezeCommand = pf.p.FreezeCommand },
		"thaw":                  func() { p.ThawCommand = pf.p.ThawCommand },
		"bandwidth-work-hours":  func() { p.BandwidthWork = pf.bwWork << 20 },
		"bandwidth-other-hours": func() { p.BandwidthOther = pf.bwOther << 20 },
	}
	f.Visit(func(fl *pflag.Flag) {
		if s, ok := set[fl.Name]; ok {
			s()
			n++
		}
	})
	return n
}

func newPolicyCreateCmd(g *globals) *cobra.Command {
	var pf *policyFlags
	c := &cobra.Command{
		Use:   "create NAME [flags]",
		Short: "Create a replication policy",
		Long: `Create a replication policy. Flags not given take the defaults shown.

App-consistent points need --freeze and --thaw commands; {vm} in them is
replaced by the VM's name, for example --freeze 'virsh domfsfreeze {vm}'.

Exits 2 for a bad value (a retention of 0s or shorter than the frequency
among them), 9 when the policy exists (change it with asr policy set).`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			p := replica.NewPolicy(args[0])
			pf.apply(c.Flags(), &p)
			return runPolicyCreate(g, p)
		},
	}
	pf = addPolicyFlags(c.Flags(), replica.NewPolicy(""))
	return c
}

func runPolicyCreate(g *globals, p vault.Policy) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	if err := e.CreatePolicy(p); err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(policyOut(p))
	}
	g.say("policy %s created", p.Name)
	return nil
}

func newPolicyListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List replication policies",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			v, err := g.openVault()
			if err != nil {
				return err
			}
			var ps []vault.Policy
			if err := v.View(func(tx *vault.Tx) (err error) { ps, err = tx.Policies(); return }); err != nil {
				return err
			}
			if g.json() {
				out := []policyJSON{}
				for _, p := range ps {
					out = append(out, policyOut(p))
				}
				return g.printJSON(out)
			}
			var rows [][]string
			for _, p := range ps {
				app := "-"
				if p.FreezeCommand != "" {
					app = p.AppConsistentEvery.String()
				}
				rows = append(rows, []string{p.Name, p.Frequency.String(), p.Retention.String(), app, p.ResyncWindow})
			}
			g.table([]string{"POLICY", "FREQUENCY", "RETENTION", "APP-CONSISTENT", "RESYNC WINDOW"}, rows)
			return nil
		},
	}
}
