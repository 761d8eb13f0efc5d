package hook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// GuardArg is the hidden first argument that makes asr run as a guard
	// (Guard) instead of as itself. It is reserved: no command may use it.
	GuardArg = "__hook-guard"
	// DefaultTimeout is the timeout Run uses when it is given none.
	DefaultTimeout = 60 * time.Second

	killGrace = 2 * time.Second  // between SIGTERM and SIGKILL
	maxOutput = 4 << 10          // output kept: its last 4 KiB
	guardEnv  = "ASR_HOOK_GUARD" // set for the guard only, never for the command
)

// Sentinel errors returned, wrapped, by Run.
var (
	// ErrTimeout: the command did not finish within its timeout and was
	// killed with its process group.
	ErrTimeout = errors.New("hook timed out")
	// ErrFailed: the command exited with a non-zero status or was killed
	// by a signal nobody in asr sent.
	ErrFailed = errors.New("hook failed")
)

// Run runs `/bin/sh -c command` under a guard (see the package doc) with
// asr's environment and working directory, and returns its combined
// stdout and stderr (the last 4 KiB). A timeout of zero or less means
// DefaultTimeout. When Run returns, every process left in the command's
// process group has been killed.
func Run(ctx context.Context, command string, timeout time.Duration) (output string, err error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if os.Getenv(guardEnv) != "" {
		// Only a binary that doesn't dispatch GuardArg gets here; refusing
		// keeps it from re-executing itself without end.
		return "", fmt.Errorf("hook %q: this process was started as a hook guard but ran as asr: its main must call hook.Guard when os.Args[1] is %q", command, GuardArg)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("hook %q: find the asr binary to run it under: %w", command, err)
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &tail{}
	cmd := exec.CommandContext(tctx, exe, GuardArg, command)
	cmd.Args[0] = "asr"
	cmd.Env = append(os.Environ(), guardEnv+"=1")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return KillGroup(cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = killGrace
	err = runGuard(cmd)
	output = out.String()
	switch {
	case err == nil || errors.Is(err, exec.ErrWaitDelay):
		return output, nil // ErrWaitDelay: exit 0, but a detached child held the output
	case ctx.Err() != nil:
		return output, fmt.Errorf("hook %q was killed: %w", command, ctx.Err())
	case tctx.Err() != nil:
		return output, &runError{fmt.Sprintf("%q did not finish within %s; killed", command, seconds(timeout)), ErrTimeout}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return output, &runError{fmt.Sprintf("%q failed with %s%s", command, ee.ProcessState, lastLines(output)), ErrFailed}
	}
	return output, fmt.Errorf("hook %q: %w", command, err)
}

// runGuard starts the guard and waits for it on one locked OS thread, so
// that the guard's Pdeathsig fires when asr dies and not when Go retires
// the thread. Once the guard has exited, but before it is reaped (so its
// PID can't be reused as a group ID), what is left of its group is killed.
func runGuard(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return err
	}
	var info unix.Siginfo
	for unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
	}
	KillGroup(cmd.Process.Pid, syscall.SIGKILL)
	return cmd.Wait()
}

// KillGroup sends sig to the process group pgid; os.ErrProcessDone when
// the group is gone.
func KillGroup(pgid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pgid, sig); err != nil {
		if err == syscall.ESRCH {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}

// runError is an error with its own message that wraps a sentinel.
type runError struct {
	msg  string
	kind error
}

func (e *runError) Error() string { return e.msg }
func (e *runError) Unwrap() error { return e.kind }

// tail is an io.Writer that keeps the last maxOutput bytes written to it.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - maxOutput; over > 0 {
		t.b = t.b[:copy(t.b, t.b[over:])]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }

// lastLines returns ": " and the last three lines of output, or "".
func lastLines(output string) string {
	s := strings.TrimSpace(output)
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	return ": " + strings.Join(lines[max(0, len(lines)-3):], "\n")
}

// seconds formats whole seconds as "60s" rather than "1m0s".
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
