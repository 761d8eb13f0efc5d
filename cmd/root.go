package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica/hook"
	"github.com/spf13/viper"
)

// globals are the flags every command has.
type globals struct {
	io      *IO
	v       *viper.Viper
	State   string
	Output  string
	Quiet   bool
	Yes     bool
	Timeout time.Duration
	// HostTimeout bounds every operator command (freeze, thaw): host.timeout.
	HostTimeout time.Duration
	// config is --config, kept for the completion functions (complete.go).
	config string
}

// Execute runs asr with the process's arguments and returns its exit code.
func Execute() int {
	if len(os.Args) > 1 && os.Args[1] == hook.GuardArg {
		return hook.Guard(os.Args[2:])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer startProfile(os.Args[1:])()
	return Run(ctx, SystemIO(), os.Args[1:])
}

// Run runs asr with the given streams and arguments and returns the exit
// code; errors are printed as one line on io.Err.
func Run(ctx context.Context, io *IO, args []string) int {
	root, g := newRoot(io)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		// Cobra's own error, from finding the command: not typed.
		err = usageError{err}
	}
	code := exitCode(err)
	switch {
	case errors.Is(err, errReported):
	case g.json():
		// Scripts read one JSON object, as from stdout.
		b, _ := json.Marshal(struct {
			Error string `json:"error"`
			Code  int    `json:"code"`
		}{oneLine(err.Error()), code})
		fmt.Fprintf(io.Err, "%s\n", b)
	default:
		fmt.Fprintf(io.Err, "asr: %s\n", oneLine(err.Error()))
	}
	return code
}

func newRoot(io *IO) (*cobra.Command, *globals) {
	g := &globals{io: io, v: viper.New()}
	root := &cobra.Command{
		Use:   "asr",
		Short: "asr protects virtual machines against the loss of a site",
		Long: `asr replicates virtual machines' disks to a recovery site (a directory or
Azure Blob Storage), keeps a window of recovery points, and moves the
workload there and back.

` + exitCodeHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			if isCompleteCmd(c) {
				return nil // the completion functions load for the command completed
			}
			return g.load(c, g.config)
		},
	}
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.State, "state", "", "site state file (default $XDG_STATE_HOME/asr/site.db; env ASR_STATE)")
	pf.StringVar(&g.config, "config", "", "config file (default $XDG_CONFIG_HOME/asr/config.yaml if present)")
	pf.StringVarP(&g.Output, "output", "o", "table", "output format: table or json")
	pf.BoolVarP(&g.Quiet, "quiet", "q", false, "print only errors and essential results")
	pf.BoolVar(&g.Yes, "yes", false, "do not ask before destructive actions")
	pf.DurationVar(&g.Timeout, "lock-timeout", 5*time.Second, "how long to wait for another asr process on this site")

	root.AddCommand(
		newInitCmd(g), newPolicyCmd(g), newEnableCmd(g), newDisableCmd(g),
		newStatusCmd(g), newPointsCmd(g), newJobsCmd(g), newDemoCmd(g),
		newReplicateCmd(g), newResyncCmd(g), newVerifyCmd(g), newResumeCmd(g),
		newTrackCmd(g), newUntrackCmd(g), newVHDCmd(g), newHRLCmd(g), newStateCmd(g), newVersionCmd(g),
		newFailoverCmd(g), newSyncCmd(g), newVMCmd(g), newFailbackCmd(g), newReprotectCmd(g),
		newPlanCmd(g),
	)
	root.Version = buildInfo().String()
	root.SetVersionTemplate("{{.Version}}\n")
	usageArgs(root)
	addCompletions(g, root)
	return root, g
}

// usageArgs makes a wrong number of arguments and a missing required flag
// usage errors (exit 2) on every command, as a bad flag is. Cobra checks
// required flags right after PreRunE, so checking them first there turns
// its plain error into ours.
func usageArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return usageError{fmt.Errorf("%s: %w; see %s --help", c.CommandPath(), err, c.CommandPath())}
			}
			return nil
		}
	}
	pre := c.PreRunE
	c.PreRunE = func(c *cobra.Command, args []string) error {
		if err := c.ValidateRequiredFlags(); err != nil {
			return usageError{fmt.Errorf("%s: %w; see %s --help", c.CommandPath(), err, c.CommandPath())}
		}
		if pre != nil {
			return pre(c, args)
		}
		return nil
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

// load resolves the global settings: config file, then ASR_* environment,
// then flags.
func (g *globals) load(c *cobra.Command, config string) error {
	v := g.v
	v.SetEnvPrefix("ASR")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.SetDefault("host.timeout", "60s")
	v.AutomaticEnv()
	if config == "" {
		config = os.Getenv("ASR_CONFIG")
	}
	if config == "" {
		if dir, err := os.UserConfigDir(); err == nil {
			if path := filepath.Join(dir, "asr", "config.yaml"); fileExists(path) {
				config = path
			}
		}
	}
	if config != "" {
		v.SetConfigFile(config)
		if err := v.ReadInConfig(); err != nil {
			return usageError{fmt.Errorf("config file %s: %v", config, err)}
		}
		if err := checkConfigKeys(v, config); err != nil {
			return err
		}
	}
	for _, name := range []string{"state", "output", "quiet", "yes", "lock-timeout"} {
		if err := v.BindPFlag(name, c.Flags().Lookup(name)); err != nil {
			return err
		}
	}
	g.State = v.GetString("state")
	g.Output = v.GetString("output")
	g.Quiet = v.GetBool("quiet")
	g.Yes = v.GetBool("yes")
	var err error
	if g.Timeout, err = duration(v, "lock-timeout", "--lock-timeout, ASR_LOCK_TIMEOUT or lock-timeout in the config"); err != nil {
		return err
	}
	if g.HostTimeout, err = duration(v, "host.timeout", "ASR_HOST_TIMEOUT or host.timeout in the config"); err != nil {
		return err
	}
	if g.Output != "table" && g.Output != "json" {
		return usageError{fmt.Errorf("--output %q: use table or json", g.Output)}
	}
	if g.State == "" {
		dir := os.Getenv("XDG_STATE_HOME")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return usageError{fmt.Errorf("no --state given and no home directory: %v", err)}
			}
			dir = filepath.Join(home, ".local", "state")
		}
		g.State = filepath.Join(dir, "asr", "site.db")
	}
	return nil
}

// duration reads a setting that must be a duration of zero or more;
// viper alone would read "banana" as 0.
func duration(v *viper.Viper, key, where string) (time.Duration, error) {
	raw := v.GetString(key)
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		return 0, usageError{fmt.Errorf("%s %q: give a duration of zero or more, such as 5s or 2m", where, raw)}
	}
	return d, nil
}

// lookup reads a setting for backends (credentials): viper config or the
// environment under its own name, such as AZURE_STORAGE_CONNECTION_STRING.
func (g *globals) lookup(key string) string {
	if s := g.v.GetString(strings.ToLower(key)); s != "" {
		return s
	}
	return os.Getenv(key)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
