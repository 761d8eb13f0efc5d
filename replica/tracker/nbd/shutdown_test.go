package nbd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// serveOn starts s on a fresh socket and returns the address and Serve's
// result channel; the test drives Shutdown itself.
func serveOn(t *testing.T, s *Server) (string, chan error) {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	return addr, served
}

func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	m := newMem(memSize, 0)
	gate := make(chan struct{})
	var entered atomic.Int32
	m.beforeWrite = func(int64) {
		entered.Add(1)
		<-gate
	}
	s := memServer(m)
	addr, served := serveOn(t, s)

	c := dial(t, addr)
	c.open("d")
	const n = 8
	for i := range n {
		c.request(cmdWrite, 0, uint64(i), uint64(i)*8192, 8192, pattern(8192, byte(i+1)))
	}
	for entered.Load() < n {
		time.Sleep(time.Millisecond)
	}
	idle := dial(t, addr) // still in the handshake
	idle.greet()

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	idle.closed() // handshake connections go at once
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with %d writes still in the backend", err, n)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.Dial("unix", addr); err == nil {
		t.Fatal("listener still accepting after Shutdown began")
	}
	close(gate)

	for range n {
		if h, errno, _ := c.reply(); errno != 0 {
			t.Fatalf("handle %d errno %d", h, errno)
		}
	}
	c.closed()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	got, _, _ := m.snapshot()
	for i := range n {
		if !bytes.Equal(got[i*8192:][:8192], pattern(8192, byte(i+1))) {
			t.Fatalf("acknowledged write %d missing after Shutdown", i)
		}
	}
	// A server that was shut down stays shut.
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "again"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestShutdownGivesUpAtContextEnd(t *testing.T) {
	m := newMem(memSize, 0)
	gate := make(chan struct{})
	defer close(gate)
	var entered atomic.Bool
	m.beforeRead = func(int64) {
		entered.Store(true)
		<-gate
	}
	s := memServer(m)
	addr, served := serveOn(t, s)
	c := dial(t, addr)
	c.open("d")
	c.request(cmdRead, 0, 1, 0, 512, nil)
	for !entered.Load() {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
	}
	c.closed()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// Requests read after Shutdown began are refused with ESHUTDOWN; a refused
// write's payload is consumed so the stream stays in step.
func TestRequestsAfterShutdownGetESHUTDOWN(t *testing.T) {
	s := memServer(newMem(memSize, 0))
	cfg, err := s.config()
	if err != nil {
		t.Fatal(err)
	}
	srvSide, cliSide := net.Pipe()
	defer cliSide.Close()
	c := &conn{srv: s, cfg: cfg, nc: srvSide}
	c.lim.init(workersPerConn, cfg.budget)
	cl := &client{t: t, nc: cliSide, br: bufio.NewReader(cliSide), reads: map[uint64]int{}}
	c.br = bufio.NewReader(srvSide)
	s.closing.Store(true)
	ex := c.lookup("d")
	done := make(chan error, 1)
	go func() { done <- c.transmit(ex) }()
	cl.request(cmdWrite, 0, 5, 0, 512, make([]byte, 512))
	if h, errno, _ := cl.reply(); h != 5 || errno != nbdESHUTDOWN {
		t.Fatalf("handle %d errno %d, want ESHUTDOWN", h, errno)
	}
	cl.request(cmdRead, 0, 6, 0, 512, nil)
	if h, errno, data := cl.reply(); h != 6 || errno != nbdESHUTDOWN || data != nil {
		t.Fatalf("handle %d errno %d, want ESHUTDOWN without payload", h, errno)
	}
	cl.request(cmdDisc, 0, 7, 0, 0, nil)
	if err := <-done; err != nil {
		t.Fatalf("transmit after DISC: %v", err)
	}
}
