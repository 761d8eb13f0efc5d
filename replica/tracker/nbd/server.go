package nbd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrConfig: the Server's fields are unusable (block sizes, exports).
	// Serve returns it before accepting anything; fix the field it names.
	ErrConfig = errors.New("nbd: invalid server configuration")
	// ErrProtocol: a client broke a MUST of the protocol (bad magic, unknown
	// client flags, oversized option or write); its connection was dropped.
	ErrProtocol = errors.New("nbd: client broke the protocol")
	// ErrUnknownExport: a client asked for an export the server does not have
	// with NBD_OPT_EXPORT_NAME, which cannot carry an error; it was dropped.
	ErrUnknownExport = errors.New("nbd: no such export")
	// ErrBackend wraps an error a Backend returned; the client got NBD_EIO
	// (or NBD_ENOSPC) and the connection goes on.
	ErrBackend = errors.New("nbd: backend failed")
)

// Backend is one export. The server calls every method from many goroutines
// at once (several requests per connection, several connections); offsets
// and lengths it passes are already checked against Size, so
// 0 <= off and off+len <= Size.
type Backend interface {
	// Size is the export's size in bytes, never negative. It is read once per
	// connection, when the client picks the export.
	Size() int64
	// ReadAt fills p from off, as io.ReaderAt. It must see every write that
	// returned before it was called, whichever connection made it.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt stores p at off, as io.WriterAt; the data need not be durable
	// until Flush.
	WriteAt(p []byte, off int64) (int, error)
	// Flush makes durable every WriteAt, Trim and WriteZeroes that returned
	// before Flush was called, from any goroutine. Because of this contract the
	// server advertises NBD_FLAG_CAN_MULTI_CONN.
	Flush() error
	// Trim says the n bytes at off are no longer needed (NBD_CMD_TRIM). It may
	// discard them or do nothing; their content is unspecified afterwards.
	Trim(off, n int64) error
	// WriteZeroes makes the n bytes at off read back as zeroes
	// (NBD_CMD_WRITE_ZEROES), by punching a hole or by writing.
	WriteZeroes(off, n int64) error
}

// Describer is optionally implemented by a Backend whose export has a
// human-readable description (sent as NBD_INFO_DESCRIPTION when asked).
type Describer interface {
	// Description is a short UTF-8 text without NUL, at most 4096 bytes.
	Description() string
}

// Server serves its Exports over NBD (fixed newstyle, simple replies). Set
// the fields before Serve and do not change them afterwards.
type Server struct {
	// Exports maps export names to backends; "" is the default export.
	Exports map[string]Backend
	// MinBlock is the advertised minimum block size (NBD_INFO_BLOCK_SIZE):
	// a power of two up to 65536; 0 means 1. Requests not aligned to it get
	// NBD_EINVAL. An export whose size is not a multiple of it advertises 1.
	MinBlock int
	// MaxRequest is the largest READ, WRITE or WRITE_ZEROES length accepted
	// and the advertised maximum block size: a multiple of max(MinBlock, 4096),
	// at most 1 GiB; 0 means 32 MiB.
	MaxRequest int
	// OnError, if set, hears errors no client reply carries: why a connection
	// was dropped (ErrProtocol, ErrUnknownExport, I/O) and backend failures
	// (ErrBackend). It is called from connection goroutines, concurrently.
	OnError func(error)

	closing   atomic.Bool
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	connWG    sync.WaitGroup
}

// config is the validated, defaulted form of the Server's fields.
type config struct {
	minBlock  uint32
	prefBlock uint32
	maxReq    uint32
	budget    int64 // payload bytes one connection may hold at once
}

func (s *Server) config() (config, error) {
	minB := s.MinBlock
	if minB == 0 {
		minB = 1
	}
	if minB < 0 || minB > 1<<16 || minB&(minB-1) != 0 {
		return config{}, fmt.Errorf("%w: MinBlock %d: use a power of two from 1 to 65536", ErrConfig, s.MinBlock)
	}
	pref := max(minB, preferredBlock)
	maxR := s.MaxRequest
	if maxR == 0 {
		maxR = defaultMaxRequest
	}
	if maxR < pref || maxR%pref != 0 || maxR > 1<<30 {
		return config{}, fmt.Errorf("%w: MaxRequest %d: use a multiple of %d up to 1 GiB", ErrConfig, s.MaxRequest, pref)
	}
	if len(s.Exports) == 0 {
		return config{}, fmt.Errorf("%w: Exports is empty: map at least one name to a Backend", ErrConfig)
	}
	for name, b := range s.Exports {
		if b == nil {
			return config{}, fmt.Errorf("%w: export %q has a nil Backend", ErrConfig, clip(name))
		}
		if len(name) > maxString {
			return config{}, fmt.Errorf("%w: export name %q is %d bytes, over the protocol's %d", ErrConfig, clip(name), len(name), maxString)
		}
		if b.Size() < 0 {
			return config{}, fmt.Errorf("%w: export %q: Size() is %d", ErrConfig, clip(name), b.Size())
		}
	}
	return config{
		minBlock:  uint32(minB),
		prefBlock: uint32(pref),
		maxReq:    uint32(maxR),
		budget:    max(int64(maxR), 64<<20),
	}, nil
}

// Serve accepts connections on l and serves each until the client leaves.
// It returns nil once Shutdown was called, ErrConfig for unusable fields, or
// the accept error. It closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	defer l.Close()
	cfg, err := s.config()
	if err != nil {
		return err
	}
	if !s.trackListener(l, true) {
		return nil
	}
	defer s.trackListener(l, false)
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			return fmt.Errorf("nbd: accept on %s: %w", l.Addr(), err)
		}
		go s.serveConn(nc, cfg)
	}
}

// Shutdown stops accepting, stops reading new requests, lets every request
// already read finish and be answered, then closes the connections.
// Connections still in the handshake are closed at once. If ctx ends first,
// the remaining connections are closed and ctx's error is returned; their
// unanswered requests may or may not have reached the backend.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		// A read deadline in the past wakes the reader without disturbing
		// replies still being written.
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return fmt.Errorf("nbd: shutdown gave up waiting for %d connection(s); they were closed: %w", n, ctx.Err())
	}
}

func (s *Server) trackListener(l net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, l)
		return true
	}
	if s.closing.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[l] = struct{}{}
	return true
}

// trackConn registers c; it fails once Shutdown began, so connWG.Add never
// races with Shutdown's Wait.
func (s *Server) trackConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return true
}

func (s *Server) untrackConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

func (s *Server) report(err error) {
	if err != nil && s.OnError != nil {
		s.OnError(err)
	}
}

// clip shortens a client-supplied string for use inside a message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
