package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain makes the test binary play asr when it is re-executed as "asr":
// Run re-executes os.Executable (this binary) as `asr __hook-guard CMD`,
// and TestKilledASRKillsHook starts it as `asr run CMD TIMEOUT`, a fake asr
// that calls Run and can be killed with SIGKILL.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "asr" {
		os.Exit(fakeASR(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeASR(args []string) int {
	switch {
	case len(args) > 0 && args[0] == GuardArg:
		return Guard(args[1:])
	case len(args) == 3 && args[0] == "run":
		d, err := time.ParseDuration(args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		out, err := Run(context.Background(), args[1], d)
		fmt.Printf("output %q, error %v\n", out, err)
		return 0
	}
	fmt.Fprintf(os.Stderr, "fake asr: unknown arguments %q\n", args)
	return 2
}

// Deadlines are generous: the machine running the tests may be loaded.
const (
	appear = 30 * time.Second // for a hook to start and write its PID
	vanish = 15 * time.Second // for a killed process to be gone
)

// sleeper is a hook that starts `sleep 600` in the background, writes its
// PID to pidFile and waits for it; prefix runs first.
func sleeper(prefix, pidFile string) string {
	return prefix + "sleep 600 & echo $! > " + pidFile + "; wait"
}

// waitPID waits for a hook to write a PID to path and returns it. The PID
// is killed when the test ends if it is still alive, so a failing test
// leaks nothing.
func waitPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(appear)
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			t.Cleanup(func() {
				if !gone(pid) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no PID in %s after %s", path, appear)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gone reports whether pid no longer runs: it doesn't exist, or it is a
// zombie (its new parent, maybe a PID 1 that doesn't reap, hasn't reaped it).
func gone(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	i := bytes.LastIndexByte(stat, ')') // the name in parentheses may hold spaces
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

func assertGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(vanish)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs %s after its hook was killed", pid, vanish)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunOutput(t *testing.T) {
	t.Parallel()
	out, err := Run(context.Background(), "echo out; echo err >&2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if out != "out\nerr\n" {
		t.Errorf("output %q, want stdout then stderr", out)
	}
}

func TestRunEnvironmentAndDir(t *testing.T) {
	t.Setenv("ASR_HOOK_TEST", "from asr")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Run(context.Background(), `echo "$ASR_HOOK_TEST"; pwd; echo "${ASR_HOOK_GUARD-unset}"`, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := "from asr\n" + wd + "\nunset\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestRunFailed(t *testing.T) {
	t.Parallel()
	out, err := Run(context.Background(), "echo first; echo boom >&2; exit 3", 0)
	if !errors.Is(err, ErrFailed) || errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want ErrFailed", err)
	}
	for _, want := range []string{"exit status 3", "boom"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if out != "first\nboom\n" {
		t.Errorf("output %q", out)
	}
}

func TestRunBoundsOutput(t *testing.T) {
	t.Parallel()
	out, err := Run(context.Background(), "head -c 1000000 /dev/zero | tr '\\0' a; echo; echo last", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != maxOutput || !strings.HasSuffix(out, "aaa\nlast\n") {
		t.Errorf("kept %d bytes ending %q, want at most %d ending in the last line", len(out), out[max(0, len(out)-20):], maxOutput)
	}
}

// TestRunTimeout: a hung hook is killed with its whole group at the
// timeout; one that ignores SIGTERM dies of the SIGKILL after the grace.
func TestRunTimeout(t *testing.T) {
	t.Parallel()
	for name, prefix := range map[string]string{"plain": "", "ignores TERM": "trap '' TERM; "} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			start := time.Now()
			_, err := Run(context.Background(), sleeper(prefix, pidFile), time.Second)
			took := time.Since(start)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("error %v, want ErrTimeout", err)
			}
			if want := "did not finish within 1s; killed"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if took > time.Second+killGrace+5*time.Second {
				t.Errorf("Run took %s with a 1s timeout", took)
			}
			assertGone(t, waitPID(t, pidFile))
		})
	}
}

// TestRunCancel: cancelling the context (asr got SIGINT) kills the group.
func TestRunCancel(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := Run(ctx, sleeper("", pidFile), 10*time.Minute)
		errc <- err
	}()
	pid := waitPID(t, pidFile)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	case <-time.After(killGrace + vanish):
		t.Fatal("Run did not return after its context was cancelled")
	}
	assertGone(t, pid)
}

// TestRunLeftoverChild: a background child that outlives the shell and
// holds its output open does not keep Run waiting, and is killed.
func TestRunLeftoverChild(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	out, err := Run(context.Background(), "sleep 600 & echo $! > "+pidFile+"; echo done", time.Minute)
	if err != nil || out != "done\n" {
		t.Fatalf("output %q, error %v", out, err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Run took %s", took)
	}
	assertGone(t, waitPID(t, pidFile))
}

// TestRunDetachedChild: a child that left the group (setsid) and holds the
// output open is waited for only the grace (WaitDelay), not the timeout.
func TestRunDetachedChild(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	out, err := Run(context.Background(), "setsid sh -c 'echo $$ > "+pidFile+"; exec sleep 600' & "+
		"while [ ! -s "+pidFile+" ]; do sleep 0.05; done; echo done", 10*time.Minute)
	pid := waitPID(t, pidFile) // killed by its cleanup: Run rightly leaves it
	if err != nil || out != "done\n" {
		t.Fatalf("output %q, error %v", out, err)
	}
	if took := time.Since(start); took > killGrace+30*time.Second {
		t.Errorf("Run took %s", took)
	}
	if gone(pid) {
		t.Errorf("detached process %d was killed; Run should leave it", pid)
	}
}

// TestKilledASRKillsHook: when asr is killed with SIGKILL in the middle of
// a hook, the guard (told by Pdeathsig) kills the hook's group, with
// SIGKILL after the grace when the hook ignores SIGTERM.
func TestKilledASRKillsHook(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for name, prefix := range map[string]string{"plain": "", "ignores TERM": "trap '' TERM; "} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			asr := &exec.Cmd{Path: exe, Args: []string{"asr", "run", sleeper(prefix, pidFile), "10m"}}
			var out bytes.Buffer
			asr.Stdout, asr.Stderr = &out, &out
			if err := asr.Start(); err != nil {
				t.Fatal(err)
			}
			pid := waitPID(t, pidFile)
			if err := asr.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			asr.Wait()
			if strings.Contains(out.String(), "output") {
				t.Fatalf("fake asr finished before it was killed: %s", out.String())
			}
			assertGone(t, pid)
		})
	}
}
