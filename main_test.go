package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/asr-project/asr/cmd"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// The scripts in testdata/script run asr as a real process (testscript
// re-executes this test binary as the asr command), so exit codes, output
// streams, signals and kill -9 are those of the shipped binary.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"asr": func() { os.Exit(cmd.Execute()) }})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, params("testdata/script", func(env *testscript.Env) {}))
}

// TestBackends runs the end-to-end scripts once per target backend, with
// $TARGET naming a fresh target: a directory, and a container on Azurite.
func TestBackends(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		testscript.Run(t, onBackend("file", params("testdata/backends", func(env *testscript.Env) {
			env.Setenv("TARGET", "file://"+env.WorkDir+"/target")
		})))
	})
	t.Run("azblob", func(t *testing.T) {
		requireAzurite(t)
		testscript.Run(t, onBackend("azblob", params("testdata/backends", func(env *testscript.Env) {
			env.Setenv("TARGET", azuriteTarget("e2e"))
		})))
	})
}

// onBackend adds the condition [file] or [azblob]: true on that backend,
// for the steps whose artifacts differ (local VHDs, page blobs).
func onBackend(name string, p testscript.Params) testscript.Params {
	base := p.Condition
	p.Condition = func(cond string) (bool, error) {
		if cond == "file" || cond == "azblob" {
			return cond == name, nil
		}
		return base(cond)
	}
	return p
}

// requireAzurite skips a test that needs Azurite when
// AZURE_STORAGE_CONNECTION_STRING is unset, or fails it when CI is set.
func requireAzurite(t *testing.T) {
	if os.Getenv("AZURE_STORAGE_CONNECTION_STRING") == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("AZURE_STORAGE_CONNECTION_STRING is not set; run the tests with bash .ci/test")
		}
		t.Skip("no Azurite: eval \"$(.ci/azurite/azurite.sh start)\" first")
	}
}

// azuriteTarget is the URL of a new container on Azurite, PREFIX-<unique>.
func azuriteTarget(prefix string) string {
	return fmt.Sprintf("azblob://devstoreaccount1/%s-%d-%d", prefix, time.Now().UnixNano(), rand.Int64())
}

// TestAzuriteRestart runs scripts that start, restart and stop an Azurite
// of their own, so they never disturb the one other tests share.
func TestAzuriteRestart(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil && os.Getenv("CI") == "" {
		t.Skip("no node to run Azurite")
	}
	testscript.Run(t, params("testdata/azure", func(env *testscript.Env) {
		env.Setenv("AZURE_STORAGE_CONNECTION_STRING", "")
		env.Defer(func() { azurite(env.WorkDir, env.Getenv, "stop") })
	}))
}

func params(dir string, setup func(*testscript.Env)) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("ASR_STATE", env.WorkDir+"/site.db")
			env.Setenv("ASR_LOCK_TIMEOUT", "1s")
			env.Setenv("XDG_CONFIG_HOME", env.WorkDir+"/config")
			for _, k := range []string{"AZURE_STORAGE_CONNECTION_STRING", "CI"} {
				env.Setenv(k, os.Getenv(k))
			}
			setup(env)
			recordScriptEnv(env)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"sleep":     cmdSleep,
			"copied":    cmdCopied,
			"exits":     cmdExits,
			"flip":      cmdFlip,
			"tree":      cmdTree,
			"waitfile":  cmdWaitFile,
			"points":    cmdPoints,
			"sigterm":   cmdSigterm,
			"sigkill":   cmdSigkill,
			"gone":      cmdGone,
			"junk":      cmdJunk,
			"azurite":   cmdAzurite,
			"killtrack": cmdKillTrack,
			"poke":      cmdPoke,
			"readbound": cmdReadBound,
			"shape":     cmdShape,
			"recovered": cmdRecovered,
		},
	}
}

// sleep DURATION
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}

// copied VM BYTES waits up to 30 s until the initial copy of the VM's first
// disk has recorded progress of at least BYTES.
func cmdCopied(ts *testscript.TestScript, neg bool, args []string) {
	want, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	v, err := vault.Open(ts.Getenv("ASR_STATE"), 5*time.Second)
	ts.Check(err)
	var got int64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		v.View(func(tx *vault.Tx) error {
			if it, err := tx.Item(args[0]); err == nil && len(it.Disks) > 0 {
				got = it.Disks[0].CopiedTo
			}
			return nil
		})
		if got >= want {
			return
		}
	}
	ts.Fatalf("%s copied %d bytes, want %d", args[0], got, want)
}

// exits CODE COMMAND ARGS... runs a command and checks its exit code; its
// output is kept for stdout and stderr checks as with exec.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit code %d, want %d", got, want)
	}
}

// poke TARGET DISK OFFSET [LENGTH BYTE] overwrites the 512-byte page at
// OFFSET of a disk on the target with 0xEE bytes (or LENGTH bytes of
// BYTE) through the target's own interface, as something other than
// asr would: the out-of-band change a verify finds, or a recovered VM's
// writes to its disk on Azure.
func cmdPoke(ts *testscript.TestScript, neg bool, args []string) {
	off, err := strconv.ParseInt(args[2], 10, 64)
	ts.Check(err)
	ctx := context.Background()
	t, err := target.Open(ctx, args[0], target.Config{Lookup: ts.Getenv})
	ts.Check(err)
	defer t.Close()
	n, b := int64(target.PageSize), byte(0xee)
	if len(args) == 5 {
		n, err = strconv.ParseInt(args[3], 0, 64)
		ts.Check(err)
		v, err := strconv.ParseUint(args[4], 0, 8)
		ts.Check(err)
		b = byte(v)
	}
	off = off / target.PageSize * target.PageSize
	for done := int64(0); done < n; done += target.MaxWrite {
		ts.Check(t.WritePages(ctx, args[1], off+done, bytes.Repeat([]byte{b}, int(min(n-done, target.MaxWrite)))))
	}
}

// readbound checks the JSON results of the asr resync just run: on Azure
// (TARGET azblob://...) each read back at most 1.1x the bytes it sent plus
// 64 KiB for the checksum map; on a directory it read what it compared.
func cmdReadBound(ts *testscript.TestScript, neg bool, args []string) {
	var res []struct {
		VM       string
		Bytes    int64
		Compared int64 `json:"compared_bytes"`
		ReadBack int64 `json:"read_back_bytes"`
	}
	ts.Check(json.Unmarshal([]byte(ts.ReadFile("stdout")), &res))
	for _, r := range res {
		azure := strings.HasPrefix(ts.Getenv("TARGET"), "azblob:")
		if azure && float64(r.ReadBack) > 1.1*float64(r.Bytes)+64<<10 {
			ts.Fatalf("%s: read back %d bytes from Azure to send %d", r.VM, r.ReadBack, r.Bytes)
		}
		ts.Logf("%s: compared %d, sent %d, read back %d", r.VM, r.Compared, r.Bytes, r.ReadBack)
	}
}

// shape prints the shape of the JSON document asr just printed on stdout:
// one line per key path with its JSON type (list elements as []), sorted
// and without duplicates, so a script pins what -o json promises with
// cmp.
func cmdShape(ts *testscript.TestScript, neg bool, args []string) {
	var v any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile("stdout")), &v))
	seen := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			seen[path+" object"] = true
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			seen[path+" list"] = true
			for _, e := range x {
				walk(path+"[]", e)
			}
		case string:
			seen[path+" string"] = true
		case float64:
			seen[path+" number"] = true
		case bool:
			seen[path+" bool"] = true
		case nil:
			seen[path+" null"] = true
		}
	}
	walk("", v)
	lines := slices.Sorted(maps.Keys(seen))
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
}

// flip FILE OFFSET inverts one byte; a negative offset counts from the end.
func cmdFlip(ts *testscript.TestScript, neg bool, args []string) {
	path := ts.MkAbs(args[0])
	if m, _ := filepath.Glob(path); len(m) > 0 {
		path = m[len(m)-1] // a pattern names its last match
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	ts.Check(err)
	defer f.Close()
	off, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	if off < 0 {
		fi, err := f.Stat()
		ts.Check(err)
		off += fi.Size()
	}
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	ts.Check(err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	ts.Check(err)
}

// tree DIR prints every file below DIR with its size and SHA-256, so a
// script can prove a directory unchanged (cp stdout before; cmp stdout).
func cmdTree(ts *testscript.TestScript, neg bool, args []string) {
	root := ts.MkAbs(args[0])
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(ts.Stdout(), "%s %d %x\n", rel, len(data), sha256.Sum256(data))
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		ts.Fatalf("%v", err)
	}
}

// waitfile PATH waits up to 30 s for a file (a socket, say) to appear.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
	}
	ts.Fatalf("%s did not appear", args[0])
}

// points VM sets $P1, $P2, ... to the VM's recovery point IDs, oldest
// first, and $NPOINTS to their count.
func cmdPoints(ts *testscript.TestScript, neg bool, args []string) {
	v, err := vault.Open(ts.Getenv("ASR_STATE"), 5*time.Second)
	ts.Check(err)
	var pts []vault.Point
	ts.Check(v.View(func(tx *vault.Tx) (err error) { pts, err = tx.Points(args[0]); return }))
	for i, p := range pts {
		ts.Setenv(fmt.Sprintf("P%d", i+1), p.ID)
	}
	ts.Setenv("NPOINTS", strconv.Itoa(len(pts)))
}

// sigterm WORD sends SIGTERM to the background commands that have WORD
// among their arguments (testscript's kill knows only INT and KILL).
func cmdSigterm(ts *testscript.TestScript, neg bool, args []string) {
	signalBackground(ts, syscall.SIGTERM, args[0])
}

// sigkill ARG sends SIGKILL to the background commands with ARG among
// their arguments, and to nothing else (their children are theirs).
func cmdSigkill(ts *testscript.TestScript, neg bool, args []string) {
	signalBackground(ts, syscall.SIGKILL, args[0])
}

func signalBackground(ts *testscript.TestScript, sig syscall.Signal, arg string) {
	n := 0
	for _, c := range ts.BackgroundCmds() {
		if slices.Contains(c.Args, arg) && c.Process != nil {
			ts.Check(c.Process.Signal(sig))
			n++
		}
	}
	if n == 0 {
		ts.Fatalf("no background command with argument %q", arg)
	}
}

// junk FILE writes 4 KiB of seeded random bytes at the middle of FILE,
// on a 4 KiB boundary.
func cmdJunk(ts *testscript.TestScript, neg bool, args []string) {
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_RDWR, 0)
	ts.Check(err)
	defer f.Close()
	st, err := f.Stat()
	ts.Check(err)
	b := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	_, err = f.WriteAt(b, st.Size()/2/4096*4096)
	ts.Check(err)
}

// gone PIDFILE waits up to 15 s for the process whose PID the file holds
// to end (a zombie counts as ended).
func cmdGone(ts *testscript.TestScript, neg bool, args []string) {
	data, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	ts.Check(err)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
	}
	ts.Fatalf("process %d (from %s) is still running", pid, args[0])
}

// azurite runs .ci/azurite/azurite.sh with its state in dir/azurite and
// returns what it printed.
func azurite(dir string, getenv func(string) string, verb string) (string, error) {
	root, _ := os.Getwd()
	c := exec.Command("bash", filepath.Join(root, ".ci/azurite/azurite.sh"), verb)
	c.Env = append(os.Environ(), "ASR_AZURITE_DIR="+filepath.Join(dir, "azurite"))
	out, err := c.Output()
	return string(out), err
}

// azurite start|restart|stop manages the script's own Azurite; start sets
// $AZURE_STORAGE_CONNECTION_STRING for the commands after it.
func cmdAzurite(ts *testscript.TestScript, neg bool, args []string) {
	out, err := azurite(ts.Getenv("WORK"), ts.Getenv, args[0])
	ts.Check(err)
	if args[0] == "start" {
		const prefix = "export AZURE_STORAGE_CONNECTION_STRING="
		line := strings.TrimSpace(out)
		if !strings.HasPrefix(line, prefix) {
			ts.Fatalf("azurite.sh start printed %q", out)
		}
		ts.Setenv("AZURE_STORAGE_CONNECTION_STRING", strings.Trim(strings.TrimPrefix(line, prefix), "'"))
	}
}
