package qemunbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// NBD handshake constants (doc/proto.md of the NetworkBlockDevice project).
const (
	nbdMagic      = 0x4e42444d41474943 // "NBDMAGIC"
	optMagic      = 0x49484156454f5054 // "IHAVEOPT"
	replyMagic    = 0x0003e889045565a9
	optAbort      = 2
	repAck        = 1
	flagFixed     = 1 << 0 // NBD_FLAG_FIXED_NEWSTYLE, and its client twin
	flagNoZeroes  = 1 << 1 // NBD_FLAG_NO_ZEROES, and its client twin
	greetingBytes = 18
)

// Check says whether the child still serves: it connects to the socket,
// reads the NBD greeting and leaves with NBD_OPT_ABORT, all within 2 s.
// It fails with ErrNotRunning (and Err's error) once the child has
// exited, and with ErrUnresponsive when no greeting comes: the child is
// hung, or all Shared connections are taken. It changes nothing.
func (s *Server) Check() error {
	err := greet(s.sock, checkTimeout)
	select {
	case <-s.done:
		if e := s.Err(); e != nil {
			return fmt.Errorf("check qemu-nbd serving %s: %w: %w", s.path, ErrNotRunning, e)
		}
		return fmt.Errorf("check qemu-nbd serving %s: %w: it was stopped", s.path, ErrNotRunning)
	default:
	}
	if err != nil {
		return fmt.Errorf("check qemu-nbd (pid %d) serving %s: %w within %s on %s: %v (hung, or all %d connections taken?)",
			s.PID(), s.path, ErrUnresponsive, checkTimeout, s.sock, err, Shared)
	}
	return nil
}

// waitReady polls the socket until the child greets, and stops it when it
// exits first, ctx ends or readyTimeout passes.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		if greet(s.sock, checkTimeout) == nil {
			s.mu.Lock()
			s.ready = true
			s.mu.Unlock()
			return nil
		}
		select {
		case <-s.done:
			return s.Err()
		case <-ctx.Done():
			<-s.done // exec's Cancel ends the child
			return s.Err()
		case <-deadline.C:
			s.Stop()
			return fmt.Errorf("qemu-nbd (pid %d) serving %s (%s): %w: no answer on %s within %s; stopped it%s",
				s.PID(), s.path, s.format, ErrNotReady, s.sock, readyTimeout, s.stderr.said())
		case <-tick.C:
		}
	}
}

// greet connects to the NBD server on sock, reads its newstyle greeting
// and leaves with NBD_OPT_ABORT, so that the server logs no broken
// handshake. It returns nil when the greeting was right.
func greet(sock string, timeout time.Duration) error {
	conn, err := net.DialTimeout("unix", sock, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	var g [greetingBytes]byte
	if _, err := io.ReadFull(conn, g[:]); err != nil {
		return fmt.Errorf("read the NBD greeting: %w", err)
	}
	if binary.BigEndian.Uint64(g[0:]) != nbdMagic || binary.BigEndian.Uint64(g[8:]) != optMagic {
		return fmt.Errorf("not a newstyle NBD greeting: %q", g[:16])
	}
	flags := uint32(binary.BigEndian.Uint16(g[16:])) & (flagFixed | flagNoZeroes)
	var req [20]byte
	binary.BigEndian.PutUint32(req[0:], flags)
	binary.BigEndian.PutUint64(req[4:], optMagic)
	binary.BigEndian.PutUint32(req[12:], optAbort)
	// req[16:20] is the option's length: 0.
	if _, err := conn.Write(req[:]); err != nil {
		return fmt.Errorf("send NBD_OPT_ABORT: %w", err)
	}
	var rep [20]byte
	if _, err := io.ReadFull(conn, rep[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // the spec lets a server close without the ack
		}
		return fmt.Errorf("read the reply to NBD_OPT_ABORT: %w", err)
	}
	if binary.BigEndian.Uint64(rep[0:]) != replyMagic || binary.BigEndian.Uint32(rep[8:]) != optAbort ||
		binary.BigEndian.Uint32(rep[12:]) != repAck {
		return fmt.Errorf("unexpected reply to NBD_OPT_ABORT: %x", rep[:])
	}
	return nil
}
