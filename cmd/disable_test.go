package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// On a terminal disable-protection asks for the VM's name typed back; a
// wrong answer deletes nothing, and without a terminal it needs --yes.
func TestDisableConfirmsOnATerminal(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "site.db")
	disk := filepath.Join(dir, "os.raw")
	if err := os.WriteFile(disk, bytes.Repeat([]byte{7}, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ask := func(answer string, args ...string) (string, int) {
		var out, errb bytes.Buffer
		io := &IO{In: strings.NewReader(answer), Out: &out, Err: &errb, Interactive: answer != ""}
		code := Run(context.Background(), io, append([]string{"--state", state}, args...))
		return errb.String(), code
	}
	if _, code := ask("", "init", "--site", "a"); code != 0 {
		t.Fatal("init failed")
	}
	if errs, code := ask("", "enable-protection", "web", "--disk", disk, "--target", "file://"+dir+"/target"); code != 0 {
		t.Fatalf("enable-protection: %s", errs)
	}
	replica := filepath.Join(dir, "target", "disks", "web.os.vhd")
	if errs, code := ask("", "disable-protection", "web"); code != exitUsage || !strings.Contains(errs, "pass --yes") {
		t.Errorf("no terminal, no --yes: exit %d, %q", code, errs)
	}
	if errs, code := ask("wbe\n", "disable-protection", "web"); code != exitCancelled || !strings.Contains(errs, "Type the VM's name") ||
		!strings.Contains(errs, "nothing was deleted") {
		t.Errorf("wrong name typed: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(replica); err != nil {
		t.Fatalf("replica gone after a refused confirmation: %v", err)
	}
	if errs, code := ask("web\n", "disable-protection", "web"); code != 0 {
		t.Fatalf("confirmed: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(replica); !os.IsNotExist(err) {
		t.Errorf("replica still there after a confirmed disable: %v", err)
	}
}
