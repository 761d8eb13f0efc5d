package qemunbd

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
)

// verdict turns the child's end into what Err reports (see Err).
func (s *Server) verdict(werr error) error {
	s.mu.Lock()
	ready, stopping, killed, cancelled := s.ready, s.stopping, s.killed, s.cancelled
	s.mu.Unlock()
	who := fmt.Sprintf("qemu-nbd (pid %d) serving %s (%s)", s.cmd.Process.Pid, s.path, s.format)
	st := s.cmd.ProcessState
	if st == nil { // Wait failed before the child was reaped: not expected
		return &exitError{fmt.Sprintf("%s: wait: %v", who, werr), []error{ErrExited, werr}}
	}
	status, said := st.String(), s.stderr.said()
	sig := signalOf(st)
	clean := st.Success() || sig == syscall.SIGTERM
	check := fmt.Sprintf("; run `qemu-img check -f %s %s` before using the image%s", s.format, s.path, said)
	switch {
	case clean && stopping:
		return nil
	case clean && cancelled:
		cause := context.Cause(s.ctx)
		return &exitError{fmt.Sprintf("%s was stopped: %v", who, cause), []error{cause}}
	case killed && sig == syscall.SIGKILL:
		return &exitError{fmt.Sprintf("%s did not exit within %s of SIGTERM and was killed%s", who, stopGrace, check), []error{ErrKilled}}
	case cancelled && sig == syscall.SIGKILL:
		cause := context.Cause(s.ctx)
		return &exitError{fmt.Sprintf("%s was stopped (%v) but did not exit within %s of SIGTERM and was killed%s", who, cause, stopGrace, check), []error{ErrKilled, cause}}
	case stopping || cancelled:
		return &exitError{fmt.Sprintf("%s failed while stopping (%s)%s", who, status, check), []error{ErrExited}}
	case !ready:
		return &exitError{fmt.Sprintf("%s exited before it accepted a connection (%s)%s", who, status, said), []error{ErrExited}}
	}
	return &exitError{fmt.Sprintf("%s exited unexpectedly (%s)%s", who, status, said), []error{ErrExited}}
}

// signalOf is the signal that ended the process, or 0.
func signalOf(st *os.ProcessState) syscall.Signal {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// exitError is an error with its own message that wraps sentinels (and a
// context's cause).
type exitError struct {
	msg   string
	kinds []error
}

func (e *exitError) Error() string   { return e.msg }
func (e *exitError) Unwrap() []error { return e.kinds }

// tail is an io.Writer that keeps the last maxStderr bytes written to it.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - maxStderr; over > 0 {
		t.b = t.b[:copy(t.b, t.b[over:])]
	}
	return len(p), nil
}

// said is ": " and what the child wrote to stderr on one line, or "".
func (t *tail) said() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(string(t.b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return ": " + strings.Join(lines, "; ")
}
