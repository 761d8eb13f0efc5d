package nbd

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const memSize = 1 << 20

func memServer(m *memBackend) *Server {
	return &Server{Exports: map[string]Backend{"d": m}, MinBlock: 512, MaxRequest: 64 << 10}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestReadWriteTrimZeroes(t *testing.T) {
	m := newMem(memSize, 0x11)
	addr, _ := start(t, memServer(m))
	c := dial(t, addr)
	if size, _ := c.open("d"); size != memSize {
		t.Fatalf("size %d", size)
	}
	p := pattern(8192, 3)
	if errno, _ := c.do(cmdWrite, 0, 4096, 8192, p); errno != 0 {
		t.Fatalf("write errno %d", errno)
	}
	if errno, data := c.do(cmdRead, 0, 4096, 8192, nil); errno != 0 || !bytes.Equal(data, p) {
		t.Fatalf("read back errno %d, equal %v", errno, bytes.Equal(data, p))
	}
	if errno, _ := c.do(cmdWriteZeroes, cmdFlagNoHole, 8192, 1024, nil); errno != 0 {
		t.Fatalf("write zeroes errno %d", errno)
	}
	if errno, _ := c.do(cmdTrim, 0, 0, 4096, nil); errno != 0 {
		t.Fatalf("trim errno %d", errno)
	}
	data, _, _ := m.snapshot()
	want := bytes.Repeat([]byte{0x11}, memSize)
	copy(want[4096:], p)
	clear(want[8192 : 8192+1024])
	if !bytes.Equal(data, want) {
		t.Fatal("backend bytes differ from write + write zeroes")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.trims != 1 || m.zeroes != 1 {
		t.Fatalf("trims %d zeroes %d", m.trims, m.zeroes)
	}
}

func TestRequestChecks(t *testing.T) {
	m := newMem(memSize, 0x22)
	addr, _ := start(t, memServer(m))
	c := dial(t, addr)
	c.open("d")
	big := uint32(128 << 10) // over MaxRequest, under the 2^25 disconnect line
	for _, tc := range []struct {
		name    string
		typ     uint16
		flags   uint16
		off     uint64
		length  uint32
		payload bool
		want    uint32
	}{
		{"read past end", cmdRead, 0, memSize - 512, 1024, false, nbdEINVAL},
		{"read beyond end", cmdRead, 0, memSize + 512, 512, false, nbdEINVAL},
		{"read offset wraps", cmdRead, 0, 1<<64 - 512, 1024, false, nbdEINVAL},
		{"write past end", cmdWrite, 0, memSize - 512, 1024, true, nbdENOSPC},
		{"write zeroes past end", cmdWriteZeroes, 0, memSize, 512, false, nbdENOSPC},
		{"trim past end", cmdTrim, 0, memSize - 512, 4096, false, nbdEINVAL},
		{"unaligned read offset", cmdRead, 0, 100, 512, false, nbdEINVAL},
		{"unaligned write length", cmdWrite, 0, 0, 100, true, nbdEINVAL},
		{"oversized read", cmdRead, 0, 0, big, false, nbdEINVAL},
		{"oversized write", cmdWrite, 0, 0, big, true, nbdEINVAL},
		{"oversized write zeroes", cmdWriteZeroes, 0, 0, big, false, nbdEINVAL},
		{"unknown command", 42, 0, 0, 512, false, nbdEINVAL},
		{"cache", cmdCache, 0, 0, 512, false, nbdEINVAL},
		{"block status", cmdBlockStatus, 0, 0, 512, false, nbdEINVAL},
		{"DF flag", cmdRead, cmdFlagDF, 0, 512, false, nbdEINVAL},
		{"NO_HOLE on write", cmdWrite, cmdFlagNoHole, 0, 512, true, nbdEINVAL},
		{"FAST_ZERO", cmdWriteZeroes, cmdFlagFastZero, 0, 512, false, nbdEINVAL},
		{"unknown flag", cmdFlush, 1 << 15, 0, 0, false, nbdEINVAL},
		{"zero-length read", cmdRead, 0, memSize, 0, false, 0},
		{"zero-length write", cmdWrite, 0, 512, 0, false, 0},
		{"FUA on read", cmdRead, cmdFlagFUA, 0, 512, false, 0},
		{"last block", cmdRead, 0, memSize - 512, 512, false, 0},
	} {
		var payload []byte
		if tc.payload {
			payload = bytes.Repeat([]byte{0xee}, int(tc.length))
		}
		if errno, _ := c.do(tc.typ, tc.flags, tc.off, tc.length, payload); errno != tc.want {
			t.Errorf("%s: errno %d, want %d", tc.name, errno, tc.want)
		}
		// The stream must still be in step.
		if errno, data := c.do(cmdRead, 0, 0, 512, nil); errno != 0 || len(data) != 512 {
			t.Fatalf("%s: following read errno %d", tc.name, errno)
		}
	}
	if data, _, _ := m.snapshot(); !bytes.Equal(data, bytes.Repeat([]byte{0x22}, memSize)) {
		t.Fatal("a refused request changed the backend")
	}
}

func TestHugeWriteClosesConnection(t *testing.T) {
	addr, log := start(t, memServer(newMem(memSize, 0)))
	c := dial(t, addr)
	c.open("d")
	// 2^25 bytes announced, none sent: the server must answer without
	// waiting for (or allocating) the payload, then hang up.
	c.request(cmdWrite, 0, 7, 0, dosWriteLength, nil)
	if h, errno, _ := c.reply(); h != 7 || errno != nbdEINVAL {
		t.Fatalf("reply handle %d errno %d, want 7 EINVAL", h, errno)
	}
	c.closed()
	log.waitFor(t, ErrProtocol)
}

func TestPipelinedRepliesOutOfOrder(t *testing.T) {
	m := newMem(memSize, 0)
	src := pattern(memSize, 1)
	copy(m.data, src)
	release := make(chan struct{})
	m.beforeRead = func(off int64) {
		if off == 0 {
			<-release
		}
	}
	addr, _ := start(t, memServer(m))
	c := dial(t, addr)
	c.open("d")
	// Everything is sent before any reply is read.
	c.request(cmdRead, 0, 1, 0, 4096, nil)
	c.request(cmdRead, 0, 2, 4096, 4096, nil)
	for i := range 20 {
		c.request(cmdWrite, 0, uint64(100+i), uint64(65536+i*4096), 4096, pattern(4096, byte(i)))
	}
	h, errno, data := c.reply()
	if h == 1 {
		t.Fatal("the blocked read was answered first: requests are not concurrent")
	}
	seen := map[uint64]bool{h: true}
	check := func(h uint64, errno uint32, data []byte) {
		if errno != 0 {
			t.Fatalf("handle %d errno %d", h, errno)
		}
		switch h {
		case 1:
			if !bytes.Equal(data, src[:4096]) {
				t.Fatal("handle 1 data mismatch")
			}
		case 2:
			if !bytes.Equal(data, src[4096:8192]) {
				t.Fatal("handle 2 data mismatch")
			}
		}
	}
	check(h, errno, data)
	close(release)
	for len(seen) < 22 {
		h, errno, data := c.reply()
		if seen[h] {
			t.Fatalf("handle %d answered twice", h)
		}
		seen[h] = true
		check(h, errno, data)
	}
	got, _, _ := m.snapshot()
	for i := range 20 {
		if !bytes.Equal(got[65536+i*4096:][:4096], pattern(4096, byte(i))) {
			t.Fatalf("write %d not in backend", i)
		}
	}
}

func TestRequestsInFlightAreBounded(t *testing.T) {
	m := newMem(memSize, 0)
	var cur, peak atomic.Int32
	m.beforeWrite = func(int64) {
		n := cur.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		cur.Add(-1)
	}
	addr, _ := start(t, memServer(m))
	c := dial(t, addr)
	c.open("d")
	const n = 100
	go func() {
		for i := range n {
			c.request(cmdWrite, 0, uint64(i), uint64(i%16)*65536, 65536, pattern(65536, byte(i)))
		}
	}()
	for range n {
		if _, errno, _ := c.reply(); errno != 0 {
			t.Fatalf("errno %d", errno)
		}
	}
	if p := peak.Load(); p > workersPerConn || p < 2 {
		t.Fatalf("peak concurrent writes %d, want 2..%d", p, workersPerConn)
	}
}

func TestFlushAndFUA(t *testing.T) {
	m := newMem(memSize, 0)
	addr, _ := start(t, memServer(m))
	c := dial(t, addr)
	c.open("d")
	a := pattern(4096, 9)
	if errno, _ := c.do(cmdWrite, 0, 0, 4096, a); errno != 0 {
		t.Fatal(errno)
	}
	if _, durable, _ := m.snapshot(); bytes.Equal(durable[:4096], a) {
		t.Fatal("test backend made the write durable without a flush")
	}
	// A flush from another connection covers a write acknowledged on this
	// one (CAN_MULTI_CONN is advertised).
	c2 := dial(t, addr)
	c2.open("d")
	if errno, _ := c2.do(cmdFlush, 0, 0, 0, nil); errno != 0 {
		t.Fatal(errno)
	}
	if _, durable, _ := m.snapshot(); !bytes.Equal(durable[:4096], a) {
		t.Fatal("acknowledged write not durable after FLUSH")
	}
	b := pattern(4096, 10)
	if errno, _ := c.do(cmdWrite, cmdFlagFUA, 8192, 4096, b); errno != 0 {
		t.Fatal(errno)
	}
	if _, durable, _ := m.snapshot(); !bytes.Equal(durable[8192:][:4096], b) {
		t.Fatal("FUA write not durable when acknowledged")
	}
	_, _, before := m.snapshot()
	c.do(cmdWriteZeroes, cmdFlagFUA, 0, 512, nil)
	c.do(cmdTrim, cmdFlagFUA, 0, 512, nil)
	if _, _, after := m.snapshot(); after != before+2 {
		t.Fatalf("FUA on write zeroes and trim: %d flushes, want 2", after-before)
	}
}

func TestBackendErrors(t *testing.T) {
	m := newMem(memSize, 0)
	addr, log := start(t, memServer(m))
	c := dial(t, addr)
	c.open("d")
	for _, tc := range []struct {
		name  string
		setup func()
		typ   uint16
		want  uint32
	}{
		{"read error", func() { m.readErr = errors.New("disk on fire") }, cmdRead, nbdEIO},
		{"short read", func() { m.shortRead = true }, cmdRead, nbdEIO},
		{"write ENOSPC", func() { m.writeErr = fmt.Errorf("wrapped: %w", syscall.ENOSPC) }, cmdWrite, nbdENOSPC},
		{"write error", func() { m.writeErr = errors.New("bad sector") }, cmdWrite, nbdEIO},
		{"flush error", func() { m.flushErr = errors.New("fsync failed") }, cmdFlush, nbdEIO},
	} {
		m.mu.Lock()
		m.readErr, m.writeErr, m.flushErr, m.shortRead = nil, nil, nil, false
		tc.setup()
		m.mu.Unlock()
		var payload []byte
		length := uint32(512)
		switch tc.typ {
		case cmdWrite:
			payload = make([]byte, 512)
		case cmdFlush:
			length = 0
		}
		// A failed read carries no payload: the next reply must parse.
		if errno, data := c.do(tc.typ, 0, 0, length, payload); errno != tc.want || data != nil {
			t.Errorf("%s: errno %d (%d bytes), want %d", tc.name, errno, len(data), tc.want)
		}
	}
	m.mu.Lock()
	m.readErr, m.writeErr, m.flushErr, m.shortRead = nil, nil, nil, false
	m.mu.Unlock()
	if errno, _ := c.do(cmdRead, 0, 0, 512, nil); errno != 0 {
		t.Fatalf("read after errors: %d", errno)
	}
	if err := log.waitFor(t, ErrBackend); err == nil {
		t.Fatal("backend failure not reported")
	}
}

func TestDisconnectFinishesOutstanding(t *testing.T) {
	m := newMem(memSize, 0)
	m.beforeWrite = func(int64) { time.Sleep(10 * time.Millisecond) }
	addr, _ := start(t, memServer(m))
	c := dial(t, addr)
	c.open("d")
	for i := range 8 {
		c.request(cmdWrite, 0, uint64(i), uint64(i)*4096, 4096, pattern(4096, byte(i)))
	}
	c.request(cmdDisc, 0, 99, 0, 0, nil)
	for range 8 {
		if h, errno, _ := c.reply(); errno != 0 || h == 99 {
			t.Fatalf("reply handle %d errno %d", h, errno)
		}
	}
	c.closed()
	got, _, _ := m.snapshot()
	for i := range 8 {
		if !bytes.Equal(got[i*4096:][:4096], pattern(4096, byte(i))) {
			t.Fatalf("write %d lost at disconnect", i)
		}
	}
}
