package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// run runs asr in-process with buffers and returns stdout, stderr and the
// exit code.
func run(t *testing.T, tty bool, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), &IO{In: strings.NewReader(""), Out: &out, Err: &errb, TTY: tty}, args)
	return out.String(), errb.String(), code
}

func TestExitCodesAreDocumented(t *testing.T) {
	for _, c := range []int{exitOK, exitFailure, exitUsage, exitNotFound, exitNoSite, exitLocked, exitBadData,
		exitTarget, exitAuth, exitExists, exitState, exitMismatch, exitLocal, exitCancelled} {
		if !strings.Contains(exitCodeHelp, "\n  "+strconv.Itoa(c)+" ") {
			t.Errorf("exit code %d is not in asr --help", c)
		}
	}
	out, _, code := run(t, false, "--help")
	if code != 0 || !strings.Contains(out, "5    locked") {
		t.Fatalf("asr --help (exit %d) does not list the exit codes:\n%s", code, out)
	}
}

func TestTablesOnlyOnATerminal(t *testing.T) {
	state := filepath.Join(t.TempDir(), "site.db")
	if _, _, code := run(t, false, "--state", state, "init", "--site", "a"); code != 0 {
		t.Fatal("init failed")
	}
	tty, _, _ := run(t, true, "--state", state, "policy", "list")
	plain, _, _ := run(t, false, "--state", state, "policy", "list")
	if !strings.Contains(tty, "╭") || !strings.Contains(tty, "default") {
		t.Errorf("terminal output has no table:\n%s", tty)
	}
	if strings.ContainsAny(plain, "╭│\x1b") || !strings.HasPrefix(plain, "POLICY") {
		t.Errorf("plain output has table art or escapes:\n%q", plain)
	}
}

func TestConfigThenEnvThenFlags(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "site.db")
	cfg := filepath.Join(dir, "asr.yaml")
	os.WriteFile(cfg, []byte("state: "+state+"\noutput: json\n"), 0o600)
	if _, errs, code := run(t, false, "--config", cfg, "init", "--site", "a"); code != 0 {
		t.Fatalf("init with config: %s", errs)
	}
	// The config file picks the state file and JSON output.
	if out, _, _ := run(t, false, "--config", cfg, "policy", "list"); !strings.HasPrefix(out, "[") {
		t.Errorf("config file output setting ignored:\n%s", out)
	}
	// The environment beats the file.
	t.Setenv("ASR_OUTPUT", "table")
	if out, _, _ := run(t, false, "--config", cfg, "policy", "list"); !strings.HasPrefix(out, "POLICY") {
		t.Errorf("ASR_OUTPUT did not override the config file:\n%s", out)
	}
	// A flag beats both.
	if out, _, _ := run(t, false, "--config", cfg, "-o", "json", "policy", "list"); !strings.HasPrefix(out, "[") {
		t.Errorf("--output did not override ASR_OUTPUT:\n%s", out)
	}
	// A broken config file is a usage error.
	os.WriteFile(cfg, []byte("state: [\n"), 0o600)
	if _, errs, code := run(t, false, "--config", cfg, "policy", "list"); code != exitUsage || strings.Count(errs, "\n") != 1 {
		t.Errorf("bad config: exit %d, stderr %q", code, errs)
	}
}
