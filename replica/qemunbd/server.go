package qemunbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asr-project/asr/replica/hook"
)

const (
	// ExportName is the NBD export name qemu-nbd serves the image under.
	ExportName = "disk"
	// Shared is how many clients qemu-nbd serves at once (--shared).
	Shared = 8

	socketName  = "nbd.sock"
	maxSockPath = 107     // sun_path holds 108 bytes with the NUL
	maxStderr   = 4 << 10 // stderr kept: its last 4 KiB
)

// Timings; variables so that tests can shorten them.
var (
	readyTimeout = 10 * time.Second      // Start: from exec to the first greeting
	stopGrace    = 5 * time.Second       // SIGTERM to SIGKILL (Stop, ctx ending)
	checkTimeout = 2 * time.Second       // Check: connect and greeting
	readyPoll    = 20 * time.Millisecond // Start: between connection attempts
)

// Options says how to serve an image.
type Options struct {
	// Format is qemu's name for the image format (qcow2, vhdx, vmdk, vdi,
	// qed, ...); required. Probe picks it by content.
	Format string
	// ReadOnly serves the image read-only (--read-only): writes fail, and
	// other read-only users may open the image at the same time (writers
	// may not).
	ReadOnly bool
	// BesideWriter serves the image read-only without taking qemu's image
	// locks, so it can be read while another process (asr's own tracker)
	// writes it. What that writer changes meanwhile may read stale; the
	// caller must account for those writes (asr's logs do).
	BesideWriter bool
	// Dir is the directory for the socket. Empty: a new directory under
	// $TMPDIR, removed when the child exits. Else it is created 0700 (and
	// then removed likewise) or must already be a directory of this user
	// that no other user can enter; one server per Dir.
	Dir string
}

// Server is a running qemu-nbd child serving one image on a Unix socket.
// Its methods are safe for concurrent use.
type Server struct {
	path, format string
	dir, sock    string
	ownDir       bool // dir was made by Start: removed when the child exits
	ctx          context.Context
	cmd          *exec.Cmd
	stderr       *tail
	done         chan struct{}
	stopOnce     sync.Once

	mu        sync.Mutex
	reaped    bool  // the child was waited for: its PID may be reused, signal nothing
	ready     bool  // it answered once
	stopping  bool  // Stop sent SIGTERM
	killed    bool  // Stop sent SIGKILL after the grace
	cancelled bool  // ctx ended and cancel sent SIGTERM
	err       error // how the child ended; set before done is closed
}

// Start runs `qemu-nbd` for the image at path (made absolute) and returns
// once the child answers an NBD greeting on its socket. The child lives
// in its own process group, gets SIGTERM when ctx ends (SIGKILL after a
// grace of 5 s) or when the thread that started it dies with asr, and is
// served until Stop. On error nothing is left running and the socket
// directory is removed; a child that exited first is reported with its
// exit status and stderr (ErrExited), one that did not answer within 10 s
// with ErrNotReady, a missing qemu-nbd with ErrNotInstalled.
func Start(ctx context.Context, path string, opt Options) (*Server, error) {
	if opt.Format == "" {
		return nil, fmt.Errorf("serve %s with qemu-nbd: no image format given: set Options.Format (qcow2, vhdx, vmdk, ...), from Probe or the operator's --format", path)
	}
	bin, err := exec.LookPath("qemu-nbd")
	if err != nil {
		return nil, fmt.Errorf("serve %s: %w (%v): install qemu-utils (Debian, Ubuntu) or qemu-img (Fedora, RHEL)", path, ErrNotInstalled, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("serve %s with qemu-nbd: %w", path, err)
	}
	if _, err := statImage(abs); err != nil {
		return nil, fmt.Errorf("serve %s with qemu-nbd: %w", abs, err)
	}
	dir, own, err := socketDir(opt.Dir)
	if err != nil {
		return nil, fmt.Errorf("serve %s with qemu-nbd: %w", abs, err)
	}
	s := &Server{path: abs, format: opt.Format, dir: dir, ownDir: own,
		sock: filepath.Join(dir, socketName), ctx: ctx, stderr: &tail{}, done: make(chan struct{})}
	if err := s.checkSocketPath(); err != nil {
		if own {
			os.Remove(dir)
		}
		return nil, err
	}
	args := []string{
		"--socket=" + s.sock,
		"--export-name=" + ExportName,
		"--persistent",
		fmt.Sprintf("--shared=%d", Shared),
		"--cache=writeback",
		"--aio=threads",
		"--discard=unmap",
	}
	if opt.ReadOnly || opt.BesideWriter {
		args = append(args, "--read-only")
	}
	if opt.BesideWriter {
		// --image-opts is the only way to reach the file driver's
		// locking option; a comma in the path is doubled.
		args = append(args, "--image-opts", "driver="+opt.Format+",file.driver=file,file.locking=off,file.filename="+strings.ReplaceAll(abs, ",", ",,"))
	} else {
		args = append(args, "--format="+opt.Format, abs)
	}
	s.cmd = exec.CommandContext(ctx, bin, args...)
	s.cmd.Stderr = s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	s.cmd.Cancel = s.cancel
	s.cmd.WaitDelay = stopGrace

	started := make(chan error, 1)
	go s.run(started)
	if err := <-started; err != nil {
		s.removeFiles()
		return nil, fmt.Errorf("serve %s: start %s: %w", abs, bin, err)
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Socket is the path of the Unix socket qemu-nbd listens on.
func (s *Server) Socket() string { return s.sock }

// Export is the NBD export name to ask for (ExportName).
func (s *Server) Export() string { return ExportName }

// PID is the child's process ID, which is also its process group ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Done is closed when the child has exited and its socket and socket
// directory have been removed.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err says how the child ended: nil while it runs and after a Stop that
// ended it cleanly; after it exited on its own, an error wrapping
// ErrExited with its exit status and stderr; after its context ended, one
// wrapping the context's cause; ErrKilled when SIGTERM was not enough.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stop ends the child: SIGTERM to its group, then SIGKILL if it has not
// exited within 5 s. It returns when the child is gone and its socket
// and socket directory removed, with Err: nil if the child exited cleanly
// (exit status 0, or killed by that SIGTERM), ErrKilled if it had to be
// killed, ErrExited if it had already died or failed while stopping.
// Idempotent: later calls return the same.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		if s.reaped {
			s.mu.Unlock()
			return
		}
		s.stopping = true
		s.signalLocked(syscall.SIGTERM)
		s.mu.Unlock()
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			s.mu.Lock()
			s.killed = true
			s.signalLocked(syscall.SIGKILL)
			s.mu.Unlock()
		}
	})
	<-s.done
	return s.Err()
}

// run starts the child, reports the start on started, and waits for it.
// It keeps to one OS thread throughout: Pdeathsig fires when the thread
// that forked the child ends, so the thread must outlive the child.
func (s *Server) run(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := s.cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	pid := s.cmd.Process.Pid
	// Wait for the exit without reaping, so that the PID, and with it the
	// group ID, stays ours while what is left of the group is killed.
	var info unix.Siginfo
	for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
	}
	s.mu.Lock()
	hook.KillGroup(pid, syscall.SIGKILL)
	s.reaped = true
	s.mu.Unlock()
	werr := s.cmd.Wait()
	err := s.verdict(werr)
	s.removeFiles()
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.done)
}

// cancel is the Cmd.Cancel exec calls when ctx ends.
func (s *Server) cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reaped {
		return os.ErrProcessDone
	}
	s.cancelled = true
	return hook.KillGroup(s.cmd.Process.Pid, syscall.SIGTERM)
}

// signalLocked sends sig to the child's group unless the child has been
// reaped. s.mu must be held.
func (s *Server) signalLocked(sig syscall.Signal) {
	if !s.reaped {
		hook.KillGroup(s.cmd.Process.Pid, sig)
	}
}

// removeFiles removes the socket (qemu-nbd removes it only on a clean
// exit) and the socket directory if Start made it.
func (s *Server) removeFiles() {
	os.Remove(s.sock)
	if s.ownDir {
		os.Remove(s.dir)
	}
}

// statImage checks that path is a regular file or a block device (qcow2
// on a logical volume), without opening it.
func statImage(path string) (fs.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	m := st.Mode()
	if m.IsRegular() || (m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0) {
		return st, nil
	}
	return nil, fmt.Errorf("%s is not a disk image: it is %s (mode %v)", path, kind(m), m)
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file"
}

// socketDir returns the directory for the socket and whether Start made
// it. A directory given must be this user's and closed to others: anyone
// who can connect to the socket can read and write the disk.
func socketDir(dir string) (string, bool, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "asr-qemunbd-")
		if err != nil {
			return "", false, fmt.Errorf("make a directory for the NBD socket: %w (set $TMPDIR or Options.Dir)", err)
		}
		return d, true, nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", false, err
	}
	if err := os.Mkdir(dir, 0o700); err == nil {
		return dir, true, nil
	} else if !errors.Is(err, fs.ErrExist) {
		return "", false, fmt.Errorf("make the socket directory: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", false, fmt.Errorf("socket directory: %w", err)
	}
	if !st.IsDir() {
		return "", false, fmt.Errorf("socket directory %s is %s, not a directory", dir, kind(st.Mode()))
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return "", false, fmt.Errorf("socket directory %s belongs to uid %d, not to this user (%d): use a private directory, or leave Options.Dir empty", dir, sys.Uid, os.Geteuid())
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", false, fmt.Errorf("socket directory %s is open to other users (mode %v), who could read and write the disk through the socket: chmod 700 it, or leave Options.Dir empty", dir, st.Mode().Perm())
	}
	return dir, false, nil
}

// checkSocketPath refuses a socket path too long for sun_path, and a
// socket some live server already listens on (qemu would unlink it and
// take the path over).
func (s *Server) checkSocketPath() error {
	if len(s.sock) > maxSockPath {
		return fmt.Errorf("serve %s with qemu-nbd: socket path %s is %d bytes, over the %d a Unix socket allows: set Options.Dir (or $TMPDIR) to a shorter directory", s.path, s.sock, len(s.sock), maxSockPath)
	}
	if _, err := os.Lstat(s.sock); err == nil && greet(s.sock, checkTimeout) == nil {
		return fmt.Errorf("serve %s with qemu-nbd: another NBD server already listens on %s: give each server its own Options.Dir", s.path, s.sock)
	}
	return nil
}
