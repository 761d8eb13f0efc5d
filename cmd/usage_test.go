package cmd

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/asr-project/asr/vault"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every command exits 2 for a wrong number of arguments and for a missing
// required flag, and so does an unknown command: usage errors, as asr
// --help documents.
func TestUsageErrorsExit2(t *testing.T) {
	root, _ := newRoot(&IO{})
	var walk func(c *cobra.Command)
	checked := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() || c.Name() == "help" || strings.HasPrefix(c.Name(), "__") || c.HasParent() && c.Parent().Name() == "completion" {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		// Find an argument count the command refuses, and one it takes.
		var ok []string
		okFound, refused := false, false
		for _, args := range [][]string{nil, {"web"}, {"web", "x"}, {"a", "b", "c", "d", "e", "f", "g"}} {
			if err := c.ValidateArgs(args); err != nil {
				if refused {
					continue
				}
				refused = true
				_, stderr, code := run(t, false, append(path, args...)...)
				if code != exitUsage || !strings.Contains(stderr, "arg") && !strings.Contains(stderr, "unknown command") {
					t.Errorf("asr %s with %d args: exit %d, %q; want 2", strings.Join(path, " "), len(args), code, stderr)
				}
				checked++
			} else if !okFound {
				ok, okFound = args, true
			}
		}
		required := false
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if _, ok := f.Annotations[cobra.BashCompOneRequiredFlag]; ok {
				required = true
			}
		})
		if required && okFound {
			_, stderr, code := run(t, false, append(path, ok...)...)
			if code != exitUsage || !strings.Contains(stderr, "required flag") {
				t.Errorf("asr %s without its required flags: exit %d, %q; want 2", strings.Join(path, " "), code, stderr)
			}
			checked++
		}
	}
	walk(root)
	if checked < 15 {
		t.Fatalf("only %d refusals checked; the walk missed commands", checked)
	}
	if _, stderr, code := run(t, false, "statsu"); code != exitUsage || !strings.Contains(stderr, "unknown command") {
		t.Errorf("unknown command: exit %d, %q; want 2", code, stderr)
	}
}

// Under -o json an error is one JSON object on stderr, with its code.
func TestJSONErrors(t *testing.T) {
	_, stderr, code := run(t, false, "status", "-o", "json", "--state", t.TempDir()+"/none.db")
	if code != exitNoSite || !strings.HasPrefix(stderr, `{"error":"`) || !strings.HasSuffix(stderr, `"code":4}`+"\n") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// The HEALTH column is one word; the reason has a column of its own, cut
// to the terminal's width, and is shown whole for a VM named.
func TestStatusReasonColumn(t *testing.T) {
	state := filepath.Join(t.TempDir(), "site.db")
	if _, _, code := run(t, false, "--state", state, "init", "--site", "a"); code != 0 {
		t.Fatal("init failed")
	}
	v, err := vault.Open(state, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reason := "retrying: " + strings.Repeat("the target said something long ", 8) + "THE-TAIL"
	err = v.Update(func(tx *vault.Tx) error {
		return tx.PutItem(vault.Item{VM: "web", Policy: "default", Target: "file:///x", State: vault.StateProtected,
			Health: vault.HealthWarning, HealthReason: reason})
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	Run(context.Background(), &IO{In: strings.NewReader(""), Out: &out, Err: &out, TTY: true, Width: 120}, []string{"--state", state, "status"})
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if n := utf8.RuneCountInString(line); n > 120 {
			t.Errorf("a %d-column line on a 120-column terminal: %q", n, line)
		}
	}
	if !strings.Contains(out.String(), " Warning ") || strings.Contains(out.String(), "Warning:") || strings.Contains(out.String(), "THE-TAIL") {
		t.Errorf("HEALTH is not one word, or the reason was not cut:\n%q", out.String())
	}
	plain, _, _ := run(t, false, "--state", state, "status", "web")
	if !strings.Contains(plain, "web: Warning: "+reason) {
		t.Errorf("status web does not give the whole reason:\n%s", plain)
	}
}
