package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// killtrack N VM DISK [DISK...] runs N trials of kill -9 of `asr track VM`
// under a write load from an independent NBD client, at a random moment:
//
//  1. start asr track VM --socket-dir $WORK/killtrack and wait for its
//     sockets;
//  2. start the load on every DISK's export — fio (nbd engine, through
//     libnbd: randwrite, 4k-256k, queue depth 16, time based, 30 s) on even
//     trials, qemu-io with a few hundred `write -P` commands on odd ones —
//     and wait until its first write has reached a disk file;
//  3. sleep 20-400 ms, SIGKILL the tracker by its PID, and wait for the load
//     to exit (it fails: its server died); kill it by its PID after 5 s;
//  4. replicate, alternating two trials each: (a) asr replicate VM with no
//     tracker running, (b) asr track VM again, asr replicate VM through it,
//     SIGTERM, and the tracker must exit 0;
//  5. asr replicate must exit 0; asr points export VM of the latest point
//     must equal every DISK (qemu-img compare -U -f vpc -F vpc); asr status
//     VM -o json must show state Protected, health Normal.
//
// So every combination of load and replicate path comes round every four
// trials. Each trial prints one line: seed, delay, load, path, result.
// The seed of the math/rand/v2 generator behind the delays, the fio seeds
// and the qemu-io writes is random unless ASR_KILL_SEED is set, in the
// script (env ASR_KILL_SEED=...) or in the environment of go test.
//
// The loads write only the first 32 MiB of each disk, so that a replicate
// ships little; fio is not rate-limited (fio 3.33's nbd engine with --rate
// spins on a dead connection instead of exiting), so the disks must be
// large enough that what it writes before the kill (a few hundred MiB at
// most) stays under half the disk, the tracker's bound on logs waiting to
// ship: 2 GiB. Without fio on PATH, every trial uses qemu-io.
func cmdKillTrack(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: killtrack N VM DISK [DISK...]")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	seed := rand.Uint64()
	if s := cmp.Or(ts.Getenv("ASR_KILL_SEED"), os.Getenv("ASR_KILL_SEED")); s != "" {
		seed, err = strconv.ParseUint(s, 10, 64)
		ts.Check(err)
	}
	ts.Logf("killtrack: seed %d; replay with ASR_KILL_SEED=%d", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0x6b696c6c747261))
	k := &killer{ts: ts, vm: args[1], dir: ts.MkAbs("killtrack")}
	ts.Check(os.MkdirAll(k.dir, 0o700))
	for _, d := range args[2:] {
		name := strings.TrimSuffix(filepath.Base(d), filepath.Ext(d))
		k.disks = append(k.disks, killDisk{
			path: ts.MkAbs(d),
			name: name,
			sock: filepath.Join(k.dir, k.vm+"-"+name+".sock"),
		})
	}
	ts.Defer(k.cleanup)
	haveFio := k.lookPath("fio") != ""
	if !haveFio {
		ts.Logf("killtrack: no fio on PATH; every trial uses qemu-io")
	}
	for i := range n {
		load := "qemu-io"
		if haveFio && i%2 == 0 {
			load = "fio"
		}
		restart := i/2%2 == 1
		delay := time.Duration(20+r.IntN(381)) * time.Millisecond
		path := "a (replicate, no tracker)"
		if restart {
			path = "b (replicate through a restarted tracker)"
		}
		line := fmt.Sprintf("trial %d/%d seed=%d delay=%v load=%s path=%s", i+1, n, seed, delay, load, path)
		fail := func(format string, args ...any) {
			ts.Logf("%s: FAIL", line)
			ts.Fatalf("killtrack trial %d (seed %d): %s", i+1, seed, fmt.Sprintf(format, args...))
		}

		tracker := k.startTracker(fail)
		before, started := k.stamps(), time.Now()
		var loads []*proc
		for _, d := range k.disks {
			loads = append(loads, k.startLoad(load, r, "nbd+unix:///"+d.name+"?socket="+d.sock))
		}
		k.awaitWrite(before, loads, fail)
		line += fmt.Sprintf(" (first write %v after the load started)", time.Since(started).Round(time.Millisecond))
		time.Sleep(delay)
		ts.Check(tracker.cmd.Process.Signal(syscall.SIGKILL))
		<-tracker.done
		killed := time.Now()
		lingered := 0
		for _, l := range loads {
			if !l.waitOrKill(5 * time.Second) {
				lingered++
			}
		}
		if lingered > 0 {
			line += fmt.Sprintf(" (%d load(s) killed 5 s after the tracker)", lingered)
		} else {
			line += fmt.Sprintf(" (load exited %v after the kill)", time.Since(killed).Round(time.Millisecond))
		}

		var out string
		if restart {
			again := k.startTracker(fail)
			out = k.mustRun(fail, "asr", "replicate", k.vm)
			ts.Check(again.cmd.Process.Signal(syscall.SIGTERM))
			if !again.waitFor(30 * time.Second) {
				fail("the restarted tracker did not stop within 30 s of SIGTERM:\n%s", again.output())
			}
			if again.err != nil {
				fail("the restarted tracker exited with %v:\n%s", again.err, again.output())
			}
		} else {
			out = k.mustRun(fail, "asr", "replicate", k.vm)
		}

		dir := filepath.Join(k.dir, fmt.Sprintf("export%d", i+1))
		k.mustRun(fail, "asr", "points", "export", k.vm, "--dir", dir)
		for _, d := range k.disks {
			exp := filepath.Join(dir, filepath.Base(d.path))
			if o, err := k.run("qemu-img", "compare", "-U", "-f", "vpc", "-F", "vpc", d.path, exp); err != nil {
				fail("the latest point differs from %s: qemu-img compare: %v\n%s\nreplicate said:\n%s\nkilled tracker said:\n%s",
					filepath.Base(d.path), err, o, out, tracker.output())
			}
		}
		var st []struct {
			VM           string `json:"vm"`
			State        string `json:"state"`
			Health       string `json:"health"`
			HealthReason string `json:"reason"`
		}
		js := k.mustRun(fail, "asr", "status", k.vm, "-o", "json")
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			fail("asr status -o json: %v\n%s", err, js)
		}
		if len(st) != 1 || st[0].State != "Protected" || st[0].Health != "Normal" {
			fail("asr status after the kill: %s, want state Protected, health Normal\nreplicate said:\n%s", strings.TrimSpace(js), out)
		}
		os.RemoveAll(dir)
		ts.Logf("%s: ok (%s)", line, lastLine(out))
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

type killDisk struct{ path, name, sock string }

type killer struct {
	ts    *testscript.TestScript
	vm    string
	dir   string // sockets and exports
	disks []killDisk
	procs []*proc
}

// A proc is a child process; done is closed when it has exited.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  capBuffer // stdout and stderr; read only after done
	done chan struct{}
	err  error
}

func (p *proc) waitFor(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	default:
	}
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// waitOrKill waits for the process, killing it by its PID if it outlives
// d; it says whether the process exited by itself. The loads have no
// children of their own (fio runs its job as a thread, --thread), so
// nothing outlives them.
func (p *proc) waitOrKill(d time.Duration) bool {
	if p.waitFor(d) {
		return true
	}
	p.cmd.Process.Kill()
	<-p.done
	return false
}

// capBuffer keeps the first 64 KiB written to it and counts the rest: a
// client whose server died may print an error per request, fast.
type capBuffer struct {
	b bytes.Buffer
	n int64
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if room := 64<<10 - c.b.Len(); room > 0 {
		c.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capBuffer) String() string {
	if c.n > int64(c.b.Len()) {
		return fmt.Sprintf("%s\n... (%d bytes in all)", c.b.String(), c.n)
	}
	return c.b.String()
}

func (p *proc) output() string {
	select {
	case <-p.done:
		return p.out.String()
	default:
		return "(still running)"
	}
}

// cleanup kills, by PID, whatever a failed trial left running.
func (k *killer) cleanup() {
	for _, p := range k.procs {
		p.waitOrKill(0)
	}
}

// scriptEnvExtra are variables a script may set with env that asr and the
// tools read, passed on to killtrack's children when set. Everything the
// Setup function put in the environment is passed on as well.
var scriptEnvExtra = []string{"ASR_CONFIG", "ASR_OUTPUT", "ASR_QUIET", "ASR_YES", "ASR_CRASHPOINT", "TARGET"}

type scriptEnvKey struct{}

// recordScriptEnv remembers the names of the variables Setup put in the
// script's environment: testscript gives a command no list of them, only
// Getenv, and killtrack's children must get the script's environment.
func recordScriptEnv(env *testscript.Env) {
	var names []string
	for _, kv := range env.Vars {
		if name, _, ok := strings.Cut(kv, "="); ok && name != "" {
			names = append(names, name)
		}
	}
	env.Values[scriptEnvKey{}] = names
}

// scriptEnv is the script's environment as it is now.
func scriptEnv(ts *testscript.TestScript) []string {
	names, _ := ts.Value(scriptEnvKey{}).([]string)
	seen := map[string]bool{}
	var env []string
	for _, name := range names {
		if !seen[name] {
			seen[name] = true
			env = append(env, name+"="+ts.Getenv(name))
		}
	}
	for _, name := range scriptEnvExtra {
		if v := ts.Getenv(name); v != "" && !seen[name] {
			env = append(env, name+"="+v)
		}
	}
	return append(env, "PWD="+ts.MkAbs("."))
}

// lookPath finds a program on the script's PATH, as exec in a script does.
func (k *killer) lookPath(name string) string {
	for _, dir := range filepath.SplitList(k.ts.Getenv("PATH")) {
		if dir == "" {
			continue
		}
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p
		}
	}
	return ""
}

func (k *killer) command(name string, args ...string) *exec.Cmd {
	path := k.lookPath(name)
	if path == "" {
		k.ts.Fatalf("killtrack: %s not found on the script's PATH", name)
	}
	c := exec.Command(path, args...)
	c.Dir = k.ts.MkAbs(".")
	c.Env = scriptEnv(k.ts)
	return c
}

// start starts a child with the script's environment.
func (k *killer) start(name string, args ...string) *proc {
	p := &proc{name: name, cmd: k.command(name, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	k.ts.Check(p.cmd.Start())
	k.procs = append(k.procs, p)
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p
}

// run runs a child to completion and returns its combined output.
func (k *killer) run(name string, args ...string) (string, error) {
	out, err := k.command(name, args...).CombinedOutput()
	return string(out), err
}

func (k *killer) mustRun(fail func(string, ...any), name string, args ...string) string {
	out, err := k.run(name, args...)
	if err != nil {
		fail("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// startTracker starts asr track and waits for every disk's socket.
func (k *killer) startTracker(fail func(string, ...any)) *proc {
	for _, d := range k.disks {
		os.Remove(d.sock) // a killed tracker leaves its sockets behind
	}
	p := k.start("asr", "track", k.vm, "--socket-dir", k.dir)
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range k.disks {
		for !fileExists(d.sock) {
			select {
			case <-p.done:
				fail("asr track exited before serving %s: %v\n%s", d.name, p.err, p.output())
			default:
			}
			if time.Now().After(deadline) {
				p.waitOrKill(0)
				fail("asr track did not create %s within 30 s:\n%s", d.sock, p.output())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startLoad starts writes on an export: fio keeps 16 in flight for 30 s
// (as a thread: a forked fio job would outlive a kill of fio by its PID);
// qemu-io writes one at a time, a few hundred of them.
func (k *killer) startLoad(kind string, r *rand.Rand, uri string) *proc {
	const region = 32 << 20
	if kind == "fio" {
		return k.start("fio", "--name=killtrack", "--ioengine=nbd", "--uri="+uri,
			"--rw=randwrite", "--bsrange=4k-256k", "--iodepth=16", fmt.Sprintf("--size=%d", region), "--thread",
			"--time_based", "--runtime=30", "--norandommap", "--randrepeat=0",
			fmt.Sprintf("--randseed=%d", r.Uint32()))
	}
	args := []string{"-f", "raw"}
	for range 300 {
		n := 4096 * (1 + r.IntN(64))
		off := 4096 * r.IntN((region-n)/4096+1)
		args = append(args, "-c", fmt.Sprintf("write -P %d %d %d", 1+r.IntN(255), off, n))
	}
	return k.start("qemu-io", append(args, uri)...)
}

type stamp struct {
	size  int64
	mtime time.Time
}

func (k *killer) stamps() []stamp {
	var s []stamp
	for _, d := range k.disks {
		fi, err := os.Stat(d.path)
		k.ts.Check(err)
		s = append(s, stamp{fi.Size(), fi.ModTime()})
	}
	return s
}

// awaitWrite waits until a load's write has reached a disk file (its size
// or modification time changed), so that the kill lands under writes and
// not during fio's start-up, which takes a second or two.
func (k *killer) awaitWrite(before []stamp, loads []*proc, fail func(string, ...any)) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		now := k.stamps()
		for i := range now {
			if now[i] != before[i] {
				return
			}
		}
		for _, l := range loads {
			select {
			case <-l.done:
				fail("%s exited before a write reached the disk: %v\n%s", l.name, l.err, l.output())
			default:
			}
		}
	}
	fail("no write reached the disk within 30 s of starting the load")
}
