package nbd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Client-side errors. Calls also return errors.ErrUnsupported when the
// export does not offer what they need (see each method).
var (
	// ErrDisconnected: the session is over. The server closed the socket,
	// died, broke the protocol, is shutting down, or Close was called. Every
	// call in flight and every later call returns it, wrapped with the socket
	// and the cause. The session cannot be resumed: Dial again, restarting
	// the server first if it died.
	ErrDisconnected = errors.New("nbd client: disconnected")
	// ErrRefused: Dial reached a server that would not open the export on the
	// client's terms (no such export, no fixed newstyle, no NBD_OPT_GO, TLS
	// required). The message says what was refused and how the server put it.
	ErrRefused = errors.New("nbd client: server refused the session")
	// ErrBadServer: the server sent something the protocol forbids (bad
	// magic, a chunk outside its request, a reply nobody asked for). Dial
	// returns it; in transmission the client hangs up, so calls see it inside
	// ErrDisconnected.
	ErrBadServer = errors.New("nbd client: server broke the protocol")
	// ErrRequest: the server failed one request; the session goes on. The
	// error also wraps the syscall.Errno it sent (EIO, ENOSPC, EINVAL, EPERM,
	// ...), so errors.Is(err, syscall.ENOSPC) works.
	ErrRequest = errors.New("nbd client: server failed the request")
	// ErrRange: a call's offset or length is negative, runs past the end of
	// the export, or is not a multiple of the server's minimum block size.
	// Nothing was sent.
	ErrRange = errors.New("nbd client: range outside the export or unaligned")
)

const (
	// clientMaxRequest caps READ and WRITE payloads (and WRITE_ZEROES, which
	// some servers, this package's included, bound the same way) whatever the
	// server advertises: the spec's interoperable maximum, 32 MiB.
	clientMaxRequest = defaultMaxRequest
	// bigRequest caps TRIM and BLOCK_STATUS lengths, which carry no payload;
	// a multiple of every valid minimum block size.
	bigRequest = 1 << 30
	// closeWait bounds how long Close waits for a stuck write and for the
	// server to answer what is in flight and hang up.
	closeWait = 5 * time.Second
)

// Client is one session with an NBD server, such as qemu-nbd serving a
// qcow2, VHDX or VMDK disk, on a Unix socket. Its methods are safe for
// concurrent use, with many requests in flight at once: requests are written
// whole under one lock and a reader goroutine hands each reply to its caller.
// If the connection fails, every pending and later call returns an error
// wrapping ErrDisconnected; none waits for a reply that cannot come.
//
// It implements Backend, so a Server can re-export what it reaches.
type Client struct {
	socket, export string
	nc             net.Conn
	br             *bufio.Reader // read by Dial, then only by the reader goroutine

	// Fixed by the handshake.
	size       int64
	flags      uint16 // transmission flags
	minBlock   uint32 // advertised or 1
	prefBlock  uint32 // advertised or 4096
	maxBlock   uint32 // advertised or 32 MiB
	maxReq     int64  // largest READ/WRITE/WRITE_ZEROES: min(maxBlock, 32 MiB), a multiple of minBlock
	structured bool   // NBD_OPT_STRUCTURED_REPLY was acknowledged
	hasAlloc   bool   // base:allocation was selected, as context allocID
	allocID    uint32

	wmu      sync.Mutex // held while a request goes on the wire; taken before mu
	discSent bool       // NBD_CMD_DISC was written (under wmu)

	mu      sync.Mutex
	err     error // why the session is over; set once, then no request is sent
	pending map[uint64]*call
	cookie  uint64

	shutdownSeen bool // an NBD_ESHUTDOWN arrived (reader goroutine only)
	readerDone   chan struct{}
	closeOnce    sync.Once
	closeErr     error
}

var _ Backend = (*Client)(nil)

// Extent is a run of the export with one base:allocation status.
type Extent struct {
	Off, Len int64
	// Hole: not allocated in the server's storage (NBD_STATE_HOLE).
	Hole bool
	// Zero: reads as zeroes (NBD_STATE_ZERO). False means unknown, not
	// necessarily data.
	Zero bool
}

// Dial connects to the NBD server on the Unix socket and opens export:
// fixed newstyle, structured replies and the base:allocation context when
// the server has them, then NBD_OPT_GO asking for block sizes, which the
// client then obeys. ctx bounds the connection and the handshake only.
// Errors wrap ErrRefused (the server said no), ErrBadServer, or the dial or
// I/O error.
func Dial(ctx context.Context, socket, export string) (*Client, error) {
	if len(export) > maxString {
		return nil, fmt.Errorf("nbd client: export name of %d bytes is over the protocol's %d", len(export), maxString)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("nbd client: connect to %s: %w (is the NBD server running?)", socket, err)
	}
	c := &Client{
		socket: socket, export: export, nc: nc,
		br:      bufio.NewReaderSize(nc, 64<<10),
		pending: make(map[uint64]*call),
	}
	// Ending ctx wakes a handshake blocked on the socket.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	err = c.handshake()
	if !stop() {
		err = fmt.Errorf("nbd client: handshake with %s: %w", socket, context.Cause(ctx))
	}
	if err != nil {
		if errors.Is(err, ErrRefused) {
			c.sendOption(optAbort, nil) // soft disconnect, as the spec asks; no need to wait
		}
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	c.readerDone = make(chan struct{})
	go c.readLoop()
	return c, nil
}

// Size is the export's size in bytes, as the server sent it at Dial.
func (c *Client) Size() int64 { return c.size }

// BlockSize returns the server's minimum, preferred and maximum block
// sizes (the spec's defaults, 1, 4096 and 32 MiB, if it sent none). Offsets
// and lengths must be multiples of the minimum; requests are split at the
// maximum (and at 32 MiB).
func (c *Client) BlockSize() (minimum, preferred, maximum int) {
	return int(c.minBlock), int(c.prefBlock), int(c.maxBlock)
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt: a read that runs past
// the end returns the bytes before it and io.EOF. It sends one READ per
// piece of at most the maximum request size, one after another; on an error
// n counts the pieces fully read. Holes the server reports are zero-filled.
func (c *Client) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, c.rangeErr("read", off, int64(len(p)), "negative offset")
	}
	if len(p) == 0 {
		return 0, nil
	}
	var eof error
	if int64(len(p)) > c.size-off {
		if off >= c.size {
			return 0, io.EOF
		}
		p, eof = p[:c.size-off], io.EOF
	}
	if err := c.checkRange("read", off, int64(len(p))); err != nil {
		return 0, err
	}
	n, err := each(off, int64(len(p)), c.maxReq, func(o, k int64) error {
		return c.do(&call{typ: cmdRead, off: uint64(o), length: uint32(k), buf: p[o-off : o-off+k]}, nil)
	})
	if err != nil {
		return int(n), err
	}
	return int(n), eof
}

// WriteAt writes p at off; nothing is sent unless all of it fits in the
// export (ErrRange). It sends one WRITE per piece of at most the maximum
// request size, one after another; on an error, n counts the pieces the
// server acknowledged. Data is durable only after Flush. A read-only export
// gives errors.ErrUnsupported.
func (c *Client) WriteAt(p []byte, off int64) (int, error) {
	if err := c.writable("write", off, int64(len(p))); err != nil {
		return 0, err
	}
	n, err := each(off, int64(len(p)), c.maxReq, func(o, k int64) error {
		return c.do(&call{typ: cmdWrite, off: uint64(o), length: uint32(k)}, p[o-off:o-off+k])
	})
	return int(n), err
}

// Flush makes durable every write, trim and write-zeroes whose call
// returned before Flush was called (NBD_CMD_FLUSH). A server that does not
// offer NBD_FLAG_SEND_FLUSH has no volatile cache to flush, so Flush then
// sends nothing and returns nil.
func (c *Client) Flush() error {
	if c.flags&tflagSendFlush == 0 {
		return nil
	}
	return c.do(&call{typ: cmdFlush}, nil)
}

// Trim tells the server the n bytes at off are no longer needed
// (NBD_CMD_TRIM); afterwards their contents are unspecified (qemu-nbd
// ignores it unless started with --discard=unmap). Without
// NBD_FLAG_SEND_TRIM it does nothing and returns nil, which the contract
// allows.
func (c *Client) Trim(off, n int64) error {
	if err := c.writable("trim", off, n); err != nil || c.flags&tflagSendTrim == 0 {
		return err
	}
	_, err := each(off, n, bigRequest, func(o, k int64) error {
		return c.do(&call{typ: cmdTrim, off: uint64(o), length: uint32(k)}, nil)
	})
	return err
}

// WriteZeroes makes the n bytes at off read back as zeroes
// (NBD_CMD_WRITE_ZEROES, which lets the server punch a hole), in pieces of
// at most the maximum request size. Without NBD_FLAG_SEND_WRITE_ZEROES it
// returns errors.ErrUnsupported: write zeroes with WriteAt instead.
func (c *Client) WriteZeroes(off, n int64) error {
	if err := c.writable("write zeroes", off, n); err != nil {
		return err
	}
	if c.flags&tflagSendWriteZeroes == 0 {
		return fmt.Errorf("%w: NBD server at %s does not offer NBD_CMD_WRITE_ZEROES for export %q; write zeroes with WriteAt", errors.ErrUnsupported, c.socket, c.export)
	}
	_, err := each(off, n, c.maxReq, func(o, k int64) error {
		return c.do(&call{typ: cmdWriteZeroes, off: uint64(o), length: uint32(k)}, nil)
	})
	return err
}

// BlockStatus describes [off, off+n) with base:allocation: extents in order,
// covering the range exactly, neighbours with equal status merged. It asks
// again from where each reply stopped, since servers may answer for less
// than asked. Without the context (no structured replies, or the server did
// not select it) it returns errors.ErrUnsupported.
func (c *Client) BlockStatus(off, n int64) ([]Extent, error) {
	if err := c.checkRange("block status", off, n); err != nil {
		return nil, err
	}
	if !c.hasAlloc {
		return nil, fmt.Errorf("%w: NBD server at %s did not select the base:allocation context for export %q (structured replies: %t)", errors.ErrUnsupported, c.socket, c.export, c.structured)
	}
	var out []Extent
	for pos, end := off, off+n; pos < end; {
		cl := &call{typ: cmdBlockStatus, off: uint64(pos), length: uint32(min(end-pos, bigRequest))}
		if err := c.do(cl, nil); err != nil {
			return nil, err
		}
		for _, e := range cl.extents {
			if k := len(out) - 1; k >= 0 && out[k].Hole == e.Hole && out[k].Zero == e.Zero {
				out[k].Len += e.Len
			} else {
				out = append(out, e)
			}
		}
		last := cl.extents[len(cl.extents)-1] // the reader ensured at least one
		pos = last.Off + last.Len
	}
	return out, nil
}

// Close ends the session the clean way: it sends NBD_CMD_DISC, lets the
// server answer the requests in flight and hang up (waiting at most 5 s),
// then closes the socket. It does not flush; call Flush first. Later calls
// return ErrDisconnected. Close returns an error only if NBD_CMD_DISC could
// not be sent on a live connection; repeated calls return the same.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		// A write blocked on a server that stopped reading must not hold
		// Close up; this fails it after closeWait, which ends the session.
		c.nc.SetWriteDeadline(time.Now().Add(closeWait))
		c.closeErr = c.hangUp(fmt.Errorf("%w: NBD server at %s: Close was called: %w", ErrDisconnected, c.socket, net.ErrClosed))
		c.nc.SetReadDeadline(time.Now().Add(closeWait))
		<-c.readerDone
		c.nc.Close()
	})
	return c.closeErr
}

// each calls f on consecutive pieces of [off, off+n) of at most limit bytes
// until one fails, and returns how many bytes the successful ones covered.
func each(off, n, limit int64, f func(off, n int64) error) (int64, error) {
	done := int64(0)
	for done < n {
		k := min(n-done, limit)
		if err := f(off+done, k); err != nil {
			return done, err
		}
		done += k
	}
	return done, nil
}

// checkRange refuses what the client may not send: a range outside the
// export or not aligned to the minimum block size (the export's end counts
// as aligned, so an odd-sized export's tail stays reachable).
func (c *Client) checkRange(op string, off, n int64) error {
	if off < 0 || n < 0 || off > c.size || n > c.size-off {
		return c.rangeErr(op, off, n, fmt.Sprintf("the export is %d bytes", c.size))
	}
	if mb := int64(c.minBlock); off%mb != 0 || (n%mb != 0 && off+n != c.size) {
		return c.rangeErr(op, off, n, fmt.Sprintf("the server needs multiples of %d bytes", mb))
	}
	return nil
}

func (c *Client) rangeErr(op string, off, n int64, why string) error {
	return fmt.Errorf("%w: %s of %d bytes at offset %d on export %q at %s: %s", ErrRange, op, n, off, c.export, c.socket, why)
}

// writable checks the range of a call that changes the export.
func (c *Client) writable(op string, off, n int64) error {
	if c.flags&tflagReadOnly != 0 {
		return fmt.Errorf("%w: %s: export %q at %s is read-only", errors.ErrUnsupported, op, c.export, c.socket)
	}
	return c.checkRange(op, off, n)
}

// handshake runs fixed newstyle negotiation up to the transmission phase.
func (c *Client) handshake() error {
	var g [18]byte
	if _, err := io.ReadFull(c.br, g[:]); err != nil {
		return fmt.Errorf("nbd client: read the greeting from %s: %w", c.socket, err)
	}
	if m := be.Uint64(g[0:]); m != magicInit {
		return fmt.Errorf("%w: %s greeted with magic %#x, not NBDMAGIC: is it an NBD server?", ErrBadServer, c.socket, m)
	}
	switch m := be.Uint64(g[8:]); m {
	case magicOpt:
	case magicOldstyle:
		return fmt.Errorf("%w: NBD server at %s speaks only oldstyle negotiation, which cannot name an export", ErrRefused, c.socket)
	default:
		return fmt.Errorf("%w: %s sent greeting magic %#x", ErrBadServer, c.socket, m)
	}
	hf := be.Uint16(g[16:])
	if hf&flagFixedNewstyle == 0 {
		return fmt.Errorf("%w: NBD server at %s does not speak fixed newstyle negotiation", ErrRefused, c.socket)
	}
	cf := clientFixedNewstyle
	if hf&flagNoZeroes != 0 {
		cf |= clientNoZeroes // harmless: NBD_OPT_GO never sends the zeroes
	}
	if _, err := c.nc.Write(be.AppendUint32(nil, cf)); err != nil {
		return fmt.Errorf("nbd client: send client flags to %s: %w", c.socket, err)
	}

	typ, data, err := c.option(optStructuredReply, nil)
	switch {
	case err != nil:
		return err
	case typ == repAck:
		c.structured = true
	case typ == repErrShutdown:
		return c.refused("NBD_OPT_STRUCTURED_REPLY", typ, data)
	case typ&repErrBit == 0:
		return fmt.Errorf("%w: %s answered NBD_OPT_STRUCTURED_REPLY with reply type %#x", ErrBadServer, c.socket, typ)
	} // any other error: simple replies only, and no block status
	if c.structured {
		if err := c.selectAllocation(); err != nil {
			return err
		}
	}
	return c.goExport()
}

// selectAllocation asks for the base:allocation context; a server that
// will not give it leaves BlockStatus unsupported.
func (c *Client) selectAllocation() error {
	d := be.AppendUint32(nil, uint32(len(c.export)))
	d = append(d, c.export...)
	d = be.AppendUint32(d, 1)
	d = be.AppendUint32(d, uint32(len(metaBaseAllocation)))
	d = append(d, metaBaseAllocation...)
	if err := c.sendOption(optSetMetaContext, d); err != nil {
		return err
	}
	for {
		typ, data, err := c.optionReply(optSetMetaContext)
		switch {
		case err != nil:
			return err
		case typ == repMetaContext:
			if len(data) < 4 || string(data[4:]) != metaBaseAllocation || c.hasAlloc {
				return fmt.Errorf("%w: %s answered NBD_OPT_SET_META_CONTEXT with a context (%q) the client did not ask for, or twice", ErrBadServer, c.socket, data)
			}
			c.allocID, c.hasAlloc = be.Uint32(data), true
		case typ == repAck:
			return nil
		case typ == repErrShutdown:
			return c.refused("NBD_OPT_SET_META_CONTEXT", typ, data)
		case typ&repErrBit != 0:
			c.hasAlloc = false // a failed option deselects every context
			return nil
		default:
			return fmt.Errorf("%w: %s answered NBD_OPT_SET_META_CONTEXT with reply type %#x", ErrBadServer, c.socket, typ)
		}
	}
}

// goExport sends NBD_OPT_GO with an NBD_INFO_BLOCK_SIZE request and records
// what the server says about the export.
func (c *Client) goExport() error {
	d := be.AppendUint32(nil, uint32(len(c.export)))
	d = append(d, c.export...)
	d = be.AppendUint16(d, 1)
	d = be.AppendUint16(d, infoBlockSize)
	if err := c.sendOption(optGo, d); err != nil {
		return err
	}
	c.minBlock, c.prefBlock, c.maxBlock = 1, preferredBlock, defaultMaxRequest
	gotExport := false
	for {
		typ, data, err := c.optionReply(optGo)
		if err != nil {
			return err
		}
		switch typ {
		case repInfo:
			if err := c.info(data); err != nil {
				return err
			}
			gotExport = gotExport || be.Uint16(data) == infoExport
			continue
		case repAck:
		default:
			return c.refused("NBD_OPT_GO", typ, data)
		}
		if !gotExport {
			return fmt.Errorf("%w: %s accepted NBD_OPT_GO without sending NBD_INFO_EXPORT", ErrBadServer, c.socket)
		}
		c.maxReq = min(int64(c.maxBlock), clientMaxRequest) / int64(c.minBlock) * int64(c.minBlock)
		return nil
	}
}

// info records one NBD_REP_INFO; unknown information types are ignored.
func (c *Client) info(data []byte) error {
	if len(data) < 2 {
		return fmt.Errorf("%w: %s sent an NBD_REP_INFO of %d bytes", ErrBadServer, c.socket, len(data))
	}
	switch be.Uint16(data) {
	case infoExport:
		if len(data) != 12 || be.Uint64(data[2:]) > 1<<63-1 || be.Uint16(data[10:])&tflagHasFlags == 0 {
			return fmt.Errorf("%w: %s sent NBD_INFO_EXPORT %x (want 12 bytes, a size below 2^63, NBD_FLAG_HAS_FLAGS)", ErrBadServer, c.socket, data)
		}
		c.size, c.flags = int64(be.Uint64(data[2:])), be.Uint16(data[10:])
	case infoBlockSize:
		if len(data) != 14 {
			return fmt.Errorf("%w: %s sent an NBD_INFO_BLOCK_SIZE of %d bytes, want 14", ErrBadServer, c.socket, len(data))
		}
		minB, pref, maxB := be.Uint32(data[2:]), be.Uint32(data[6:]), be.Uint32(data[10:])
		pow2 := func(v uint32) bool { return v != 0 && v&(v-1) == 0 }
		if !pow2(minB) || minB > 1<<16 || !pow2(pref) || pref < minB || maxB < minB {
			return fmt.Errorf("%w: %s sent block sizes minimum %d, preferred %d, maximum %d (want powers of two, minimum up to 65536, maximum at least the minimum)", ErrBadServer, c.socket, minB, pref, maxB)
		}
		c.minBlock, c.prefBlock, c.maxBlock = minB, pref, maxB
	}
	return nil
}

// refused turns an error reply to a handshake option into ErrRefused.
func (c *Client) refused(opt string, typ uint32, msg []byte) error {
	var what string
	switch typ {
	case repErrUnknown:
		what = fmt.Sprintf("does not offer export %q", c.export)
	case repErrUnsup:
		what = "does not support " + opt + " (too old a server?)"
	case repErrPolicy:
		what = "refused " + opt + " by policy"
	case repErrTLSReqd:
		what = "requires TLS, which this client does not speak"
	case repErrShutdown:
		what = "is shutting down"
	case repErrBlockReq, repErrInvalid, repErrPlatform, repErrTooBig:
		what = fmt.Sprintf("refused %s with error %#x", opt, typ)
	default:
		if typ&repErrBit == 0 {
			return fmt.Errorf("%w: %s answered %s with reply type %#x", ErrBadServer, c.socket, opt, typ)
		}
		what = fmt.Sprintf("refused %s with unknown error %#x", opt, typ)
	}
	if len(msg) > 0 {
		what += fmt.Sprintf(" (it said %q)", msg[:min(len(msg), 512)])
	}
	return fmt.Errorf("%w: NBD server at %s %s", ErrRefused, c.socket, what)
}

// option sends an option that has exactly one reply and reads it.
func (c *Client) option(opt uint32, data []byte) (uint32, []byte, error) {
	if err := c.sendOption(opt, data); err != nil {
		return 0, nil, err
	}
	return c.optionReply(opt)
}

func (c *Client) sendOption(opt uint32, data []byte) error {
	b := be.AppendUint64(make([]byte, 0, 16+len(data)), magicOpt)
	b = be.AppendUint32(b, opt)
	b = be.AppendUint32(b, uint32(len(data)))
	if _, err := c.nc.Write(append(b, data...)); err != nil {
		return fmt.Errorf("nbd client: send option %d to %s: %w", opt, c.socket, err)
	}
	return nil
}

// optionReply reads one option reply, which must answer opt.
func (c *Client) optionReply(opt uint32) (typ uint32, data []byte, err error) {
	var h [20]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, fmt.Errorf("nbd client: read the reply to option %d from %s: %w", opt, c.socket, err)
	}
	if m, o := be.Uint64(h[0:]), be.Uint32(h[8:]); m != magicOptReply || o != opt {
		return 0, nil, fmt.Errorf("%w: %s sent option reply magic %#x for option %d, want %#x for %d", ErrBadServer, c.socket, m, o, magicOptReply, opt)
	}
	n := be.Uint32(h[16:])
	if n > maxOptionData {
		return 0, nil, fmt.Errorf("%w: %s sent a %d-byte reply to option %d (limit %d)", ErrBadServer, c.socket, n, opt, maxOptionData)
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return 0, nil, fmt.Errorf("nbd client: read the reply to option %d from %s: %w", opt, c.socket, err)
	}
	return be.Uint32(h[12:]), data, nil
}
