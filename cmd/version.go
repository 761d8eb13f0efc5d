package cmd

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/chunker"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/vault"
)

// Version is the release, set at build time with
// -ldflags "-X github.com/asr-project/asr/cmd.Version=v1.2.3".
var Version = "dev"

// versionInfo is what asr version prints: the build and the formats this
// build writes, so an operator can tell which builds can share a target.
type versionInfo struct {
	Version     string `json:"version"`
	Commit      string `json:"commit"`
	Modified    bool   `json:"modified"`
	Go          string `json:"go"`
	HRL         string `json:"hrl_version"`
	Layout      int    `json:"target_layout"`
	StateSchema int    `json:"state_schema"`
	MapVersion  int    `json:"checksum_map_version"`
}

func buildInfo() versionInfo {
	v := versionInfo{Version: Version, Commit: "unknown", Go: runtime.Version(),
		HRL: fmt.Sprintf("%d.%d", hrl.Version2>>16, hrl.Version2&0xffff), Layout: catalog.Layout,
		StateSchema: vault.Schema, MapVersion: chunker.FormatVersion}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

func (v versionInfo) String() string {
	commit := v.Commit
	if v.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("asr %s, commit %s, %s; writes MS-HRL %s, target layout %d, state schema %d, checksum maps v%d",
		v.Version, commit, v.Go, v.HRL, v.Layout, v.StateSchema, v.MapVersion)
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the build and the formats it writes",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			v := buildInfo()
			if g.json() {
				return g.printJSON(v)
			}
			fmt.Fprintln(g.io.Out, v)
			return nil
		},
	}
}
