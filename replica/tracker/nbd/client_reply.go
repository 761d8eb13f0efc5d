package nbd

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
)

// call is one request waiting for its reply. Until done is closed only the
// reader goroutine touches buf and the result fields.
type call struct {
	typ    uint16
	off    uint64
	length uint32
	buf    []byte // READ: where the data goes; len(buf) == length

	covered []span   // READ: the parts of buf the reply filled
	extents []Extent // BLOCK_STATUS: the reply, clipped to the request
	err     error    // the first error the reply carried
	done    chan struct{}
}

// span is [from, to) relative to a request's offset.
type span struct{ from, to uint64 }

var cmdNames = map[uint16]string{cmdRead: "read", cmdWrite: "write", cmdFlush: "flush",
	cmdTrim: "trim", cmdWriteZeroes: "write zeroes", cmdBlockStatus: "block status"}

func (cl *call) String() string {
	if cl.typ == cmdFlush {
		return "flush"
	}
	return fmt.Sprintf("%s of %d bytes at offset %d", cmdNames[cl.typ], cl.length, cl.off)
}

// hangUp makes later calls fail with why and, if the session was still
// alive, sends NBD_CMD_DISC. The server then answers what is in flight and
// closes, which ends the reader goroutine.
func (c *Client) hangUp(why error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	alive := c.err == nil
	if alive {
		c.err = why
	}
	c.mu.Unlock()
	if !alive || c.discSent {
		return nil
	}
	c.discSent = true
	if _, err := c.nc.Write(requestHeader(cmdDisc, 0, 0, 0)); err != nil {
		c.nc.Close()
		return fmt.Errorf("nbd client: send NBD_CMD_DISC to %s: %w; the socket was closed instead", c.socket, err)
	}
	return nil
}

// do sends one request (and a write's payload) and waits for its reply.
func (c *Client) do(cl *call, payload []byte) error {
	cl.done = make(chan struct{})
	c.wmu.Lock()
	c.mu.Lock()
	if err := c.err; err != nil {
		c.mu.Unlock()
		c.wmu.Unlock()
		return err
	}
	c.cookie++
	cookie := c.cookie
	c.pending[cookie] = cl
	c.mu.Unlock()
	bufs := net.Buffers{requestHeader(cl.typ, cookie, cl.off, cl.length), payload}
	_, err := bufs.WriteTo(c.nc)
	c.wmu.Unlock()
	if err != nil {
		// The reader goroutine wakes on the closed socket and fails every
		// pending call, this one included.
		c.abort(fmt.Errorf("send %s: %w", cl, err))
	}
	<-cl.done
	return cl.err
}

// abort records why the session ended (the first cause wins) and closes the
// socket. Only the reader goroutine fails pending calls, since it may be
// filling one's buffer.
func (c *Client) abort(cause error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: NBD server at %s: %w; Dial again once it is back", ErrDisconnected, c.socket, cause)
	}
	c.mu.Unlock()
	c.nc.Close()
}

func requestHeader(typ uint16, cookie, off uint64, length uint32) []byte {
	b := be.AppendUint32(make([]byte, 0, 28), magicRequest)
	b = be.AppendUint16(b, 0) // no command flags are used
	b = be.AppendUint16(b, typ)
	b = be.AppendUint64(b, cookie)
	b = be.AppendUint64(b, off)
	return be.AppendUint32(b, length)
}

// readLoop hands replies to their calls until the connection fails or the
// server breaks the protocol; then it fails every pending call.
func (c *Client) readLoop() {
	defer close(c.readerDone)
	var err error
	for err == nil {
		err = c.readReply()
	}
	c.abort(err)
	c.mu.Lock()
	pending, why := c.pending, c.err
	c.pending = nil // c.err is set, so nothing registers any more
	c.mu.Unlock()
	for _, cl := range pending {
		cl.err = why
		close(cl.done)
	}
}

func (c *Client) readReply() error {
	var m [4]byte
	if _, err := io.ReadFull(c.br, m[:]); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	switch magic := be.Uint32(m[:]); {
	case magic == magicSimpleReply:
		return c.simpleReply()
	case magic == magicStructuredReply && c.structured:
		return c.chunk()
	default:
		return fmt.Errorf("%w: reply magic %#x", ErrBadServer, magic)
	}
}

func (c *Client) simpleReply() error {
	var h [12]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	errno, cookie := be.Uint32(h[0:]), be.Uint64(h[4:])
	cl, err := c.lookup(cookie)
	if err != nil {
		return err
	}
	switch {
	case errno != 0:
		// Unambiguous even for a READ under structured replies, where the
		// spec forbids it: no payload follows an error.
		c.failed(cl, errno, "")
	case cl.typ == cmdBlockStatus || (cl.typ == cmdRead && c.structured):
		return fmt.Errorf("%w: simple reply without error to %s, which needs a structured reply", ErrBadServer, cl)
	case cl.typ == cmdRead:
		if _, err := io.ReadFull(c.br, cl.buf); err != nil {
			return fmt.Errorf("read the data of %s: %w", cl, err)
		}
		cl.covered = append(cl.covered, span{0, uint64(cl.length)})
	}
	return c.finish(cookie, cl)
}

// chunk reads one structured reply chunk and applies it to its call.
func (c *Client) chunk() error {
	var h [16]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	flags, typ, cookie, n := be.Uint16(h[0:]), be.Uint16(h[2:]), be.Uint64(h[4:]), be.Uint32(h[12:])
	cl, err := c.lookup(cookie)
	if err != nil {
		return err
	}
	bad := func(what string) error {
		return fmt.Errorf("%w: chunk type %#x of %d bytes for %s: %s", ErrBadServer, typ, n, cl, what)
	}
	switch {
	case typ == chunkNone:
		if n != 0 || flags&replyFlagDone == 0 {
			return bad("NBD_REPLY_TYPE_NONE must be empty and final")
		}
	case typ == chunkOffsetData || typ == chunkOffsetHole:
		if cl.typ != cmdRead {
			return bad("content chunk for a request other than a read")
		}
		if err := c.content(cl, typ, n, bad); err != nil {
			return err
		}
	case typ == chunkBlockStatus:
		if cl.typ != cmdBlockStatus {
			return bad("block status chunk for a request other than block status")
		}
		if err := c.status(cl, n, bad); err != nil {
			return err
		}
	case typ&chunkErrorBit != 0:
		if err := c.errorChunk(cl, typ, n, bad); err != nil {
			return err
		}
	default:
		return bad("unknown chunk type")
	}
	if flags&replyFlagDone == 0 {
		return nil
	}
	return c.finish(cookie, cl)
}

// content reads an OFFSET_DATA chunk into the call's buffer or zero-fills
// an OFFSET_HOLE, after checking it lies inside the request.
func (c *Client) content(cl *call, typ uint16, n uint32, bad func(string) error) error {
	var p [12]byte
	head := p[:8]
	if typ == chunkOffsetHole {
		head = p[:12]
		if n != 12 {
			return bad("NBD_REPLY_TYPE_OFFSET_HOLE must be 12 bytes")
		}
	} else if n <= 8 {
		return bad("NBD_REPLY_TYPE_OFFSET_DATA must carry data")
	}
	if _, err := io.ReadFull(c.br, head); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	off, size := be.Uint64(p[:]), uint64(n)-8
	if typ == chunkOffsetHole {
		size = uint64(be.Uint32(p[8:]))
	}
	if size == 0 || off < cl.off || off-cl.off > uint64(cl.length) || size > uint64(cl.length)-(off-cl.off) {
		return bad(fmt.Sprintf("%d bytes at offset %d are not inside the request", size, off))
	}
	rel := off - cl.off
	dst := cl.buf[rel : rel+size]
	if typ == chunkOffsetHole {
		clear(dst)
	} else if _, err := io.ReadFull(c.br, dst); err != nil {
		return fmt.Errorf("read the data of %s: %w", cl, err)
	}
	cl.covered = append(cl.covered, span{rel, rel + size})
	return nil
}

// status reads the one NBD_REPLY_TYPE_BLOCK_STATUS chunk of a block status
// reply: consecutive extents from the request's offset, the last clipped to
// the request's end.
func (c *Client) status(cl *call, n uint32, bad func(string) error) error {
	if n < 12 || (n-4)%8 != 0 || n > maxStatusChunk {
		return bad("want a context ID and 1 to 2^20 descriptors")
	}
	if cl.extents != nil {
		return bad("a second block status chunk for the one context selected")
	}
	var d [8]byte
	if _, err := io.ReadFull(c.br, d[:4]); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	if id := be.Uint32(d[:]); id != c.allocID {
		return bad(fmt.Sprintf("metadata context %d, but base:allocation is %d", id, c.allocID))
	}
	pos, end := cl.off, cl.off+uint64(cl.length)
	for range (n - 4) / 8 {
		if _, err := io.ReadFull(c.br, d[:]); err != nil {
			return fmt.Errorf("read reply: %w", err)
		}
		length, flags := uint64(be.Uint32(d[0:])), be.Uint32(d[4:])
		if length == 0 || pos >= end {
			return bad("a zero-length descriptor, or one starting past the request")
		}
		length = min(length, end-pos) // the last one may run past the request
		cl.extents = append(cl.extents, Extent{Off: int64(pos), Len: int64(length),
			Hole: flags&stateHole != 0, Zero: flags&stateZero != 0})
		pos += length
	}
	return nil
}

// errorChunk records an error chunk: ERROR, ERROR_OFFSET, or a type this
// client does not know but whose error bit makes it an error all the same.
func (c *Client) errorChunk(cl *call, typ uint16, n uint32, bad func(string) error) error {
	if n < 6 || n > maxOptionData {
		return bad("error chunks are 6 bytes to 64 KiB")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	errno, msgLen := be.Uint32(p[0:]), uint32(be.Uint16(p[4:]))
	if errno == 0 || msgLen > maxString || msgLen > n-6 {
		return bad(fmt.Sprintf("error %d with a %d-byte message", errno, msgLen))
	}
	msg := string(p[6 : 6+msgLen])
	if typ == chunkErrorOffset {
		if n-6-msgLen < 8 {
			return bad("NBD_REPLY_TYPE_ERROR_OFFSET without its offset")
		}
		off := be.Uint64(p[6+msgLen:])
		if off < cl.off || off-cl.off >= uint64(max(cl.length, 1)) {
			return bad(fmt.Sprintf("error offset %d is not inside the request", off))
		}
		msg = fmt.Sprintf("at offset %d: %s", off, msg)
	}
	c.failed(cl, errno, msg)
	return nil
}

// failed records the server's error on a call; the first one wins. An
// NBD_ESHUTDOWN makes the client hang up, as the spec asks.
func (c *Client) failed(cl *call, errno uint32, msg string) {
	if cl.err == nil {
		said := ""
		if msg != "" {
			said = fmt.Sprintf(" (server said %q)", msg)
		}
		cl.err = fmt.Errorf("%w: %s on export %q at %s: %w%s", ErrRequest, cl, c.export, c.socket, wireErrno(errno), said)
	}
	if errno == nbdESHUTDOWN && !c.shutdownSeen {
		c.shutdownSeen = true
		go c.hangUp(fmt.Errorf("%w: NBD server at %s is shutting down; Dial again once it is back", ErrDisconnected, c.socket))
	}
}

func (c *Client) lookup(cookie uint64) (*call, error) {
	c.mu.Lock()
	cl := c.pending[cookie]
	c.mu.Unlock()
	if cl == nil {
		return nil, fmt.Errorf("%w: reply with cookie %#x, which no request in flight has", ErrBadServer, cookie)
	}
	return cl, nil
}

// finish completes a call once its reply is whole, after checking that a
// successful reply said everything it had to: a read covered exactly, a
// block status answered.
func (c *Client) finish(cookie uint64, cl *call) error {
	if cl.err == nil {
		switch cl.typ {
		case cmdRead:
			slices.SortFunc(cl.covered, func(a, b span) int { return cmp.Compare(a.from, b.from) })
			at := uint64(0)
			for _, s := range cl.covered {
				if s.from != at {
					return fmt.Errorf("%w: the reply to %s left a gap or overlap at byte %d of it", ErrBadServer, cl, at)
				}
				at = s.to
			}
			if at != uint64(cl.length) {
				return fmt.Errorf("%w: the reply to %s ended after %d bytes", ErrBadServer, cl, at)
			}
		case cmdBlockStatus:
			if len(cl.extents) == 0 {
				return fmt.Errorf("%w: the reply to %s had no base:allocation chunk", ErrBadServer, cl)
			}
		}
	}
	c.mu.Lock()
	delete(c.pending, cookie)
	c.mu.Unlock()
	close(cl.done)
	return nil
}

// wireErrno maps an NBD error value to the errno it stands for; an unknown
// value counts as EINVAL, as the spec asks.
func wireErrno(e uint32) syscall.Errno {
	switch e {
	case nbdEPERM:
		return syscall.EPERM
	case nbdEIO:
		return syscall.EIO
	case nbdENOMEM:
		return syscall.ENOMEM
	case nbdENOSPC:
		return syscall.ENOSPC
	case nbdEOVERFLOW:
		return syscall.EOVERFLOW
	case nbdENOTSUP:
		return syscall.ENOTSUP
	case nbdESHUTDOWN:
		return syscall.ESHUTDOWN
	default:
		return syscall.EINVAL
	}
}
