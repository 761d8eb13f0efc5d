package replica

import (
	"os"
	"syscall"
)

// crashpoint kills this process with SIGKILL when ASR_CRASHPOINT names the
// step it has reached. The crash tests use it to stop asr at every step of
// a cycle and prove the next run finishes the job; nothing else sets it.
func crashpoint(step string) {
	if os.Getenv("ASR_CRASHPOINT") == step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
