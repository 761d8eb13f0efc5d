package nbd

import (
	"errors"
	"fmt"
	"io"
)

// request is one transmission-phase request header.
type request struct {
	flags  uint16
	typ    uint16
	handle uint64
	off    uint64
	length uint32
}

// transmit reads requests until NBD_CMD_DISC, the end of the stream, or a
// protocol violation, handing each to its own goroutine. The caller waits
// for those before closing the connection.
func (c *conn) transmit(ex *export) error {
	var h [28]byte
	for {
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return fmt.Errorf("nbd: read request header: %w", err)
		}
		if m := be.Uint32(h[0:]); m != magicRequest {
			return fmt.Errorf("%w: request magic %#x, want %#x", ErrProtocol, m, magicRequest)
		}
		req := request{
			flags:  be.Uint16(h[4:]),
			typ:    be.Uint16(h[6:]),
			handle: be.Uint64(h[8:]),
			off:    be.Uint64(h[16:]),
			length: be.Uint32(h[24:]),
		}
		if req.typ == cmdDisc {
			return nil
		}
		if err := c.dispatch(ex, req); err != nil {
			return err
		}
	}
}

// dispatch checks a request, reads a write's payload, and starts it.
func (c *conn) dispatch(ex *export, req request) error {
	errno := nbdESHUTDOWN
	if !c.srv.closing.Load() {
		errno = c.check(ex, req)
	}
	if errno != 0 {
		return c.refuse(req, errno)
	}
	var buf []byte
	n := int64(0)
	if req.typ == cmdRead || req.typ == cmdWrite {
		n = int64(req.length)
	}
	c.lim.acquire(n)
	if n > 0 {
		buf = getBuffer(int(n))
	}
	if req.typ == cmdWrite {
		if _, err := io.ReadFull(c.br, buf); err != nil {
			putBuffer(buf)
			c.lim.release(n)
			return fmt.Errorf("nbd: read %d-byte payload of write at offset %d: %w", n, req.off, err)
		}
	}
	c.inflight.Add(1)
	go c.serve(ex, req, buf)
	return nil
}

// check returns the wire error for a request the server will not run, or 0.
func (c *conn) check(ex *export, req request) uint32 {
	allowed := cmdFlagFUA
	if req.typ == cmdWriteZeroes {
		allowed |= cmdFlagNoHole
	}
	if req.flags&^allowed != 0 {
		return nbdEINVAL
	}
	switch req.typ {
	case cmdFlush:
		return 0
	case cmdRead, cmdWrite, cmdWriteZeroes:
		if req.length > c.cfg.maxReq {
			return nbdEINVAL
		}
	case cmdTrim:
	default:
		return nbdEINVAL
	}
	if req.off%uint64(ex.minBlock) != 0 || req.length%ex.minBlock != 0 {
		return nbdEINVAL
	}
	if req.off > ex.size || uint64(req.length) > ex.size-req.off {
		if req.typ == cmdWrite || req.typ == cmdWriteZeroes {
			return nbdENOSPC
		}
		return nbdEINVAL
	}
	return 0
}

// refuse answers a request with errno, first discarding a write's payload
// so the stream stays in step. A write too large to be worth reading ends
// the session after the reply, as the spec allows for such lengths.
func (c *conn) refuse(req request, errno uint32) error {
	if req.typ == cmdWrite && req.length > 0 {
		if req.length > c.cfg.maxReq && req.length >= dosWriteLength {
			c.reply(req.handle, errno, nil)
			return fmt.Errorf("%w: write of %d bytes at offset %d exceeds MaxRequest %d; its payload was not read and the connection was closed", ErrProtocol, req.length, req.off, c.cfg.maxReq)
		}
		if _, err := io.CopyN(io.Discard, c.br, int64(req.length)); err != nil {
			return fmt.Errorf("nbd: skip %d-byte payload of refused write at offset %d: %w", req.length, req.off, err)
		}
	}
	return c.reply(req.handle, errno, nil)
}

// serve runs one request in the backend and replies.
func (c *conn) serve(ex *export, req request, buf []byte) {
	defer func() {
		putBuffer(buf)
		c.lim.release(int64(len(buf)))
		c.inflight.Done()
	}()
	errno, data := c.execute(ex, req, buf)
	c.reply(req.handle, errno, data)
}

func (c *conn) execute(ex *export, req request, buf []byte) (uint32, []byte) {
	b, off, n := ex.backend, int64(req.off), int64(req.length)
	var err error
	op := ""
	switch req.typ {
	case cmdRead:
		if n == 0 {
			return 0, nil
		}
		var got int
		got, err = b.ReadAt(buf, off)
		if got == len(buf) && errors.Is(err, io.EOF) {
			err = nil // io.ReaderAt may report EOF with a full read at the end
		} else if err == nil && got < len(buf) {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			return 0, buf
		}
		op = "read"
	case cmdWrite:
		if n > 0 {
			var put int
			put, err = b.WriteAt(buf, off)
			if err == nil && put < len(buf) {
				err = io.ErrShortWrite
			}
		}
		op = "write"
	case cmdTrim:
		if n > 0 {
			err = b.Trim(off, n)
		}
		op = "trim"
	case cmdWriteZeroes:
		if n > 0 {
			err = b.WriteZeroes(off, n)
		}
		op = "write zeroes"
	case cmdFlush:
		err = b.Flush()
		op = "flush"
	}
	// FUA on a write-type command: the reply waits until a flush made this
	// command's data durable. On READ and FLUSH the bit is accepted and ignored.
	if err == nil && req.flags&cmdFlagFUA != 0 && req.typ != cmdRead && req.typ != cmdFlush {
		err = b.Flush()
		op = "flush (FUA)"
	}
	if err != nil {
		c.srv.report(fmt.Errorf("%w: export %q: %s of %d bytes at offset %d: %w", ErrBackend, clip(ex.name), op, n, off, err))
		return errnoOf(err), nil
	}
	return 0, nil
}
