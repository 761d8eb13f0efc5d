package hook

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// Guard is the main of `asr __hook-guard COMMAND` (args is what follows
// GuardArg). It runs `/bin/sh -c COMMAND` in its own process group, which
// it leads, and returns the shell's exit code (128+n if signal n killed
// it). On SIGTERM (from Run, or from the kernel when asr died), SIGINT or
// SIGHUP it sends SIGTERM to the group, waits a grace of two seconds and
// kills the group with SIGKILL, itself included, so it does not return.
func Guard(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "asr %s: want one command, got %d arguments\n", GuardArg, len(args))
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// Run made the guard a group leader; when run by hand it may not be,
	// and it must never kill a group it did not create.
	if syscall.Getpgrp() != os.Getpid() {
		if err := syscall.Setpgid(0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "asr %s: start a process group: %v\n", GuardArg, err)
			return 127
		}
	}
	os.Unsetenv(guardEnv)
	sh := exec.Command("/bin/sh", "-c", args[0])
	sh.Stdin, sh.Stdout, sh.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := sh.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "asr %s: %v\n", GuardArg, err)
		return 127
	}
	done := make(chan struct{})
	go func() { sh.Wait(); close(done) }()
	select {
	case <-done:
		if ws, ok := sh.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return sh.ProcessState.ExitCode()
	case <-sigs:
	}
	pgid := os.Getpid()
	syscall.Kill(-pgid, syscall.SIGTERM) // the guard's own copy is caught
	select {
	case <-done:
	case <-time.After(killGrace):
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // ends the guard too
	return 128 + int(syscall.SIGKILL)
}
