// Package hook runs operator commands (freeze and thaw hooks, VM shutdown
// and start commands): with a timeout, in their own process group, killed
// as a group on timeout, on cancellation and when asr dies.
//
// # What Run promises
//
// Run returns when the command ends, when its timeout passes or when its
// context is cancelled, and when it returns nothing the command started is
// left in the command's process group: a hook that forgot a background
// child can't hold the VM lock, the output pipe or the host past Run. A
// command that means to leave a process running (a VM started with
// `nohup qemu ... &`) must detach it into a session of its own (setsid,
// qemu -daemonize); such a process can still hold the output pipe, and
// Run waits for it at most a short grace (Cmd.WaitDelay).
//
// On timeout or cancellation the group gets SIGTERM and, after a grace of
// two seconds, SIGKILL. The errors are ErrTimeout, ctx.Err() and, for a
// non-zero exit, ErrFailed, with the exit status and the last lines of the
// output, which is kept to its last 4 KiB.
//
// # Why a guard process
//
// A process group can't be killed by a process that is dead: if asr were
// the parent of /bin/sh, `kill -9 asr` would leave a `sleep 600` hook
// running. So Run does not start the shell itself. It re-executes the asr
// binary (os.Executable, argv[0] "asr") as a small guard, `asr __hook-guard
// COMMAND`, which leads a new process group (Setpgid) and is told by the
// kernel when asr dies (Pdeathsig SIGTERM). The guard starts /bin/sh in its
// own group and forwards its exit code; on SIGTERM, SIGINT or SIGHUP it
// passes SIGTERM to the group, waits the grace and kills the group, itself
// included. The asr binary must therefore call Guard when os.Args[1] is
// GuardArg, before anything else; so must any test binary whose tests reach
// Run, since in tests os.Executable is the test binary.
//
// Pdeathsig is sent when the thread that forked the child dies, not the
// process, so Run keeps its goroutine on one OS thread (runtime.LockOSThread)
// from Start until Wait returns. If asr dies between the fork and the
// child's prctl(PR_SET_PDEATHSIG), the signal would be lost; Go's runtime
// closes that window by comparing the parent PID after the prctl and
// sending the signal itself when the parent has changed. If asr dies after
// the exec but before the guard's signal handler is installed, the default
// action kills the guard, and the guard has not started the shell yet.
package hook
