package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asr-project/asr/vault"
)

// stateCheck runs `state check` on its own, as the root will once it
// registers newStateCmd.
func stateCheck(t *testing.T, state, output string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globals{io: &IO{In: strings.NewReader(""), Out: &out, Err: &errb}, State: state, Output: output, Timeout: time.Second}
	c := newStateCmd(g)
	c.SetArgs([]string{"check"})
	c.SilenceUsage, c.SilenceErrors = true, true
	err := c.Execute()
	return out.String(), errb.String(), err
}

func TestStateCheck(t *testing.T) {
	state := filepath.Join(t.TempDir(), "site.db")
	v, err := vault.Init(state, "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v.Update(func(tx *vault.Tx) error { return tx.PutPolicy(vault.Policy{Name: "default"}) })

	out, _, err := stateCheck(t, state, "table")
	if err != nil || out != "state file "+state+" is sound: 0 VMs, 0 recovery points, 0 jobs, 1 policies\n" {
		t.Fatalf("sound file: %v, %q", err, out)
	}
	out, _, err = stateCheck(t, state, "json")
	var r vault.Report
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || !r.Sound || r.Policies != 1 {
		t.Fatalf("sound file, JSON: %v, %s", err, out)
	}

	os.WriteFile(state, []byte("not a state file\n"), 0o600)
	out, _, err = stateCheck(t, state, "table")
	if !errors.Is(err, vault.ErrCorrupt) || out != "" {
		t.Fatalf("damaged file: %v, %q", err, out)
	}
	out, _, err = stateCheck(t, state, "json")
	r = vault.Report{}
	if !errors.Is(err, vault.ErrCorrupt) || json.Unmarshal([]byte(out), &r) != nil || r.Sound || r.Problem != "not a bbolt state file" {
		t.Fatalf("damaged file, JSON: %v, %s", err, out)
	}
}
