package nbd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A minimal NBD client speaking the wire format byte by byte, so tests can
// send what real clients never would.

type client struct {
	t     testing.TB
	nc    net.Conn
	br    *bufio.Reader
	reads map[uint64]int // handle -> payload length of a pending READ
	mu    sync.Mutex
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc), reads: map[uint64]int{}}
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

func (c *client) readN(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("client read %d bytes: %v", n, err)
	}
	return b
}

// greet reads the server greeting and returns the handshake flags.
func (c *client) greet() uint16 {
	c.t.Helper()
	g := c.readN(18)
	if be.Uint64(g) != magicInit || be.Uint64(g[8:]) != magicOpt {
		c.t.Fatalf("greeting magics %x", g[:16])
	}
	return be.Uint16(g[16:])
}

func (c *client) flags(f uint32) { c.write(be.AppendUint32(nil, f)) }

func (c *client) opt(opt uint32, data []byte) {
	b := be.AppendUint64(nil, magicOpt)
	b = be.AppendUint32(b, opt)
	b = be.AppendUint32(b, uint32(len(data)))
	c.write(append(b, data...))
}

func (c *client) optReply(wantOpt uint32) (typ uint32, data []byte) {
	c.t.Helper()
	h := c.readN(20)
	if be.Uint64(h) != magicOptReply {
		c.t.Fatalf("option reply magic %#x", be.Uint64(h))
	}
	if got := be.Uint32(h[8:]); got != wantOpt {
		c.t.Fatalf("option reply for option %d, want %d", got, wantOpt)
	}
	return be.Uint32(h[12:]), c.readN(int(be.Uint32(h[16:])))
}

func infoData(name string, reqs ...uint16) []byte {
	d := be.AppendUint32(nil, uint32(len(name)))
	d = append(d, name...)
	d = be.AppendUint16(d, uint16(len(reqs)))
	for _, r := range reqs {
		d = be.AppendUint16(d, r)
	}
	return d
}

// info sends NBD_OPT_INFO or NBD_OPT_GO and collects NBD_REP_INFO payloads
// by type until the final reply, whose type and data it returns.
func (c *client) info(opt uint32, name string, reqs ...uint16) (map[uint16][]byte, uint32, []byte) {
	c.t.Helper()
	c.opt(opt, infoData(name, reqs...))
	infos := map[uint16][]byte{}
	for {
		typ, data := c.optReply(opt)
		if typ != repInfo {
			return infos, typ, data
		}
		if len(data) < 2 {
			c.t.Fatalf("NBD_REP_INFO of %d bytes", len(data))
		}
		infos[be.Uint16(data)] = data[2:]
	}
}

// open does the whole handshake with NBD_OPT_GO and returns the export size
// and transmission flags.
func (c *client) open(name string) (uint64, uint16) {
	c.t.Helper()
	c.greet()
	c.flags(clientFixedNewstyle | clientNoZeroes)
	infos, typ, msg := c.info(optGo, name, infoBlockSize)
	if typ != repAck {
		c.t.Fatalf("NBD_OPT_GO %q: reply %#x %q", name, typ, msg)
	}
	ex := infos[infoExport]
	if len(ex) != 10 {
		c.t.Fatalf("NBD_INFO_EXPORT payload %d bytes", len(ex))
	}
	return be.Uint64(ex), be.Uint16(ex[8:])
}

func (c *client) request(typ, flags uint16, handle, off uint64, length uint32, payload []byte) {
	b := be.AppendUint32(nil, magicRequest)
	b = be.AppendUint16(b, flags)
	b = be.AppendUint16(b, typ)
	b = be.AppendUint64(b, handle)
	b = be.AppendUint64(b, off)
	b = be.AppendUint32(b, length)
	if typ == cmdRead {
		c.mu.Lock()
		c.reads[handle] = int(length)
		c.mu.Unlock()
	}
	c.write(append(b, payload...))
}

// reply reads one simple reply; a successful READ's payload comes with it.
func (c *client) reply() (handle uint64, errno uint32, data []byte) {
	c.t.Helper()
	h := c.readN(16)
	if m := be.Uint32(h); m != magicSimpleReply {
		c.t.Fatalf("reply magic %#x", m)
	}
	errno, handle = be.Uint32(h[4:]), be.Uint64(h[8:])
	c.mu.Lock()
	n, isRead := c.reads[handle]
	delete(c.reads, handle)
	c.mu.Unlock()
	if isRead && errno == 0 {
		data = c.readN(n)
	}
	return handle, errno, data
}

// do sends one request and waits for its reply.
func (c *client) do(typ, flags uint16, off uint64, length uint32, payload []byte) (uint32, []byte) {
	c.t.Helper()
	const h = 0xfeedface
	c.request(typ, flags, h, off, length, payload)
	handle, errno, data := c.reply()
	if handle != h {
		c.t.Fatalf("reply handle %#x, want %#x", handle, h)
	}
	return errno, data
}

// closed checks that the server closed the connection (after any bytes the
// test did not read).
func (c *client) closed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c.br); err != nil {
		c.t.Fatalf("want the server to close the connection, got %v", err)
	}
}

// errLog collects what the server reports through OnError.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

// waitFor waits until an error matching target was reported.
func (l *errLog) waitFor(t testing.TB, target error) error {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		l.mu.Lock()
		for _, err := range l.errs {
			if errors.Is(err, target) {
				l.mu.Unlock()
				return err
			}
		}
		l.mu.Unlock()
	}
	t.Fatalf("no error matching %v was reported; got %v", target, l.errs)
	return nil
}

// start serves s on a Unix socket until the test ends, then checks that
// Shutdown and Serve both return nil.
func start(t testing.TB, s *Server) (addr string, log *errLog) {
	t.Helper()
	log = &errLog{}
	if s.OnError == nil {
		s.OnError = log.add
	}
	addr = filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr, log
}
