package cmd

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
)

// startProfile starts a CPU profile (runtime/pprof) of the whole run when
// ASR_CPUPROFILE names a path; the file is PATH.<command>.<pid> (such as
// PATH.track.4242), so concurrent runs do not collide. It returns what
// stops the profile. Hidden: for measuring, not for operators.
func startProfile(args []string) func() {
	path := os.Getenv("ASR_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	name := "asr"
	root, _ := newRoot(&IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	if c, _, err := root.Find(args); err == nil && c != root {
		name = strings.Join(strings.Fields(strings.TrimPrefix(c.CommandPath(), "asr ")), "-")
	}
	f, err := os.Create(fmt.Sprintf("%s.%s.%d", path, name, os.Getpid()))
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "asr: ASR_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
