package replica

import (
	"os"
	"syscall"
)

// crashpoint is called at each step of a cycle. It kills this process with
// SIGKILL when ASR_CRASHPOINT names the step: the crash tests stop asr at
// every step and prove the next run finishes the job. Unit tests replace
// it to act at a step; nothing else sets either.
var crashpoint = func(step string) {
	if os.Getenv("ASR_CRASHPOINT") == step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

// Crashpoint is crashpoint for the packages above the engine (failover),
// so one ASR_CRASHPOINT names the steps of every long job.
func Crashpoint(step string) { crashpoint(step) }
