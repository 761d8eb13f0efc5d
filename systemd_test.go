package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asr-project/asr/cmd"
)

// The units in dist/systemd name the installed binary, /usr/local/bin/asr.
const installedAsr = "/usr/local/bin/asr"

// TestSystemdUnits checks dist/systemd two ways: systemd-analyze verify
// finds nothing to say about any unit, and the command line of each
// ExecStart is one asr accepts (its flags exist).
//
// systemd-analyze verify refuses a unit whose ExecStart binary is missing,
// and asr is rarely installed where the tests run, so it verifies copies
// of the units in a temporary folder whose ExecStart names this test
// binary instead: verify only checks that the file is executable, so any
// executable does, and the units themselves keep the path they install
// with. (--root would need a whole tree with the units and the binary
// below it, for the same check.) verify reports unknown keys and bad
// values as warnings and still exits 0, so any line naming one of the
// units fails the test too.
func TestSystemdUnits(t *testing.T) {
	units, err := filepath.Glob("dist/systemd/asr-*")
	if err != nil || len(units) != 3 {
		t.Fatalf("dist/systemd holds %v (%v), want the replicate service and timer and the track template", units, err)
	}
	for _, u := range units {
		checkExecStart(t, u)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed; run the tests with bash .ci/test, which installs systemd")
		}
		t.Skip("no systemd-analyze: apt-get install systemd")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var args []string
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(dst, bytes.ReplaceAll(data, []byte(installedAsr), []byte(self)), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, dst)
	}
	c := exec.Command(analyze, append([]string{"verify"}, args...)...)
	c.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "asr-") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	t.Logf("systemd-analyze verify %s:\n%s", strings.Join(args, " "), out)
}

// checkExecStart runs the ExecStart of a service with --help, instance
// web and the variables the unit sets expanded, so a flag asr does not
// have (a typo, a rename) fails here rather than every minute in the
// journal.
func checkExecStart(t *testing.T, unit string) {
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		if kv, ok := strings.CutPrefix(line, "Environment="); ok {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		if cmdline, ok := strings.CutPrefix(line, "ExecStart="); ok {
			lines = append(lines, cmdline)
		}
	}
	if strings.HasSuffix(unit, ".service") && len(lines) != 1 {
		t.Fatalf("%s: %d ExecStart lines, want 1", unit, len(lines))
	}
	for _, cmdline := range lines {
		args := strings.Fields(strings.ReplaceAll(cmdline, "%i", "web"))
		if args[0] != installedAsr {
			t.Errorf("%s: ExecStart runs %s, want %s", unit, args[0], installedAsr)
		}
		for i, a := range args {
			args[i] = os.Expand(a, func(k string) string { return env[k] })
		}
		var out bytes.Buffer
		streams := &cmd.IO{In: strings.NewReader(""), Out: &out, Err: &out}
		if code := cmd.Run(context.Background(), streams, append(args[1:], "--help")); code != 0 {
			t.Errorf("%s: %s --help exits %d:\n%s", unit, strings.Join(args, " "), code, out.String())
		}
	}
}
