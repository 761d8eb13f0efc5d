package nbd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"sync"
)

// workersPerConn bounds the requests one connection has in the backend at
// once; qemu keeps up to 16 in flight.
const workersPerConn = 16

// conn is one client connection. One goroutine reads (handshake, then
// request headers and write payloads); each request runs in its own
// goroutine, bounded by lim; replies are serialized by wmu.
type conn struct {
	srv *Server
	cfg config
	nc  net.Conn
	br  *bufio.Reader

	noZeroes bool

	lim      limiter
	inflight sync.WaitGroup

	wmu  sync.Mutex
	werr error // first failed reply write; later replies are dropped
}

func (s *Server) serveConn(nc net.Conn, cfg config) {
	c := &conn{srv: s, cfg: cfg, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	c.lim.init(workersPerConn, cfg.budget)
	if !s.trackConn(c) {
		nc.Close()
		return
	}
	defer s.untrackConn(c)
	err := c.run()
	c.inflight.Wait()
	nc.Close()
	c.wmu.Lock()
	if c.werr != nil {
		err = c.werr
	}
	c.wmu.Unlock()
	if err != nil {
		s.report(fmt.Errorf("nbd: connection from %s: %w", remote(nc), err))
	}
}

func (c *conn) run() error {
	ex, err := c.handshake()
	if err == nil && ex != nil {
		err = c.transmit(ex)
	}
	return c.quiet(err)
}

// quiet drops errors that only say the session ended the ordinary way: the
// client closed at a message boundary, or Shutdown woke the reader.
func (c *conn) quiet(err error) error {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return nil
	case c.srv.closing.Load() && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed)):
		return nil
	}
	return err
}

// send writes bufs whole (one writev) under the reply lock.
func (c *conn) send(bufs ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	nb := net.Buffers(bufs)
	if _, err := nb.WriteTo(c.nc); err != nil {
		c.werr = fmt.Errorf("nbd: write to client: %w", err)
		// Closing wakes the reader so the connection winds down.
		c.nc.Close()
		return c.werr
	}
	return nil
}

// reply sends a simple reply; data is the read payload or nil.
func (c *conn) reply(handle uint64, errno uint32, data []byte) error {
	var h [16]byte
	binary.BigEndian.PutUint32(h[0:], magicSimpleReply)
	binary.BigEndian.PutUint32(h[4:], errno)
	binary.BigEndian.PutUint64(h[8:], handle)
	if len(data) == 0 {
		return c.send(h[:])
	}
	return c.send(h[:], data)
}

func remote(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return "local socket"
}

// limiter bounds one connection's requests in flight and the payload bytes
// they hold, so a client can make the server hold at most budget bytes
// (plus the buffer pool's rounding) however many requests it pipelines.
type limiter struct {
	mu    sync.Mutex
	cond  sync.Cond
	slots int
	bytes int64
}

func (l *limiter) init(slots int, bytes int64) {
	l.cond.L = &l.mu
	l.slots, l.bytes = slots, bytes
}

// acquire waits for a slot and n bytes; n never exceeds the budget because
// requests over MaxRequest are refused before.
func (l *limiter) acquire(n int64) {
	l.mu.Lock()
	for l.slots == 0 || l.bytes < n {
		l.cond.Wait()
	}
	l.slots--
	l.bytes -= n
	l.mu.Unlock()
}

func (l *limiter) release(n int64) {
	l.mu.Lock()
	l.slots++
	l.bytes += n
	l.mu.Unlock()
	l.cond.Broadcast()
}

// Payload buffers come from per-power-of-two pools shared by all
// connections, so a long copy does not allocate per request.
var bufPools [31]sync.Pool

func bufClass(n int) int {
	return max(bits.Len(uint(n-1)), 12)
}

func getBuffer(n int) []byte {
	if n == 0 {
		return nil
	}
	k := bufClass(n)
	if p, ok := bufPools[k].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<k)
}

func putBuffer(b []byte) {
	c := cap(b)
	if c < 1<<12 || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	bufPools[bits.Len(uint(c))-1].Put(&b)
}
