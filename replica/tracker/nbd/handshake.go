package nbd

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

var be = binary.BigEndian

// export is the export a client picked, fixed for its session.
type export struct {
	name     string
	backend  Backend
	size     uint64
	minBlock uint32
}

// lookup returns the named export, or nil.
func (c *conn) lookup(name string) *export {
	b, ok := c.srv.Exports[name]
	if !ok {
		return nil
	}
	size := uint64(max(b.Size(), 0))
	minB := c.cfg.minBlock
	// The spec wants the size to be a multiple of the advertised minimum
	// (qemu refuses the export otherwise); when it is not, advertise 1 so
	// the tail stays reachable.
	if size%uint64(minB) != 0 {
		minB = 1
	}
	return &export{name: name, backend: b, size: size, minBlock: minB}
}

// handshake runs fixed newstyle negotiation. It returns the export chosen by
// NBD_OPT_EXPORT_NAME or NBD_OPT_GO, or nil when the client aborted.
func (c *conn) handshake() (*export, error) {
	greet := make([]byte, 18)
	be.PutUint64(greet[0:], magicInit)
	be.PutUint64(greet[8:], magicOpt)
	be.PutUint16(greet[16:], flagFixedNewstyle|flagNoZeroes)
	if err := c.send(greet); err != nil {
		return nil, err
	}
	var cf [4]byte
	if _, err := io.ReadFull(c.br, cf[:]); err != nil {
		return nil, fmt.Errorf("nbd: read client flags: %w", err)
	}
	flags := be.Uint32(cf[:])
	// Fixed newstyle is honoured even without NBD_FLAG_C_FIXED_NEWSTYLE (the
	// spec allows it); any bit we did not offer ends the session (it must).
	if flags&^(clientFixedNewstyle|clientNoZeroes) != 0 {
		return nil, fmt.Errorf("%w: client flags %#x set bits the server did not offer", ErrProtocol, flags)
	}
	c.noZeroes = flags&clientNoZeroes != 0

	var hdr [16]byte
	var data []byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return nil, fmt.Errorf("nbd: read option header: %w", err)
		}
		if m := be.Uint64(hdr[0:]); m != magicOpt {
			return nil, fmt.Errorf("%w: option magic %#x, want %#x", ErrProtocol, m, magicOpt)
		}
		opt, n := be.Uint32(hdr[8:]), be.Uint32(hdr[12:])
		if n > maxOptionData {
			return nil, fmt.Errorf("%w: option %d carries %d bytes, over the %d-byte limit", ErrProtocol, opt, n, maxOptionData)
		}
		data = slices.Grow(data[:0], int(n))[:n]
		if _, err := io.ReadFull(c.br, data); err != nil {
			return nil, fmt.Errorf("nbd: read %d bytes of option %d: %w", n, opt, err)
		}
		ex, end, err := c.option(opt, data)
		if err != nil || end {
			return ex, err
		}
	}
}

// option answers one option; end reports that haggling is over.
func (c *conn) option(opt uint32, data []byte) (ex *export, end bool, err error) {
	if c.srv.closing.Load() && opt != optAbort {
		if opt == optExportName {
			return nil, true, nil // cannot carry an error: just close
		}
		return nil, false, c.optReply(opt, repErrShutdown, []byte("server is shutting down"))
	}
	switch opt {
	case optExportName:
		ex := c.lookup(string(data))
		if ex == nil {
			return nil, true, fmt.Errorf("%w: NBD_OPT_EXPORT_NAME %q (that option cannot carry an error, so the connection was closed)", ErrUnknownExport, clip(string(data)))
		}
		reply := make([]byte, 10, 10+124)
		be.PutUint64(reply[0:], ex.size)
		be.PutUint16(reply[8:], transmissionFlagsSent)
		if !c.noZeroes {
			reply = reply[:10+124]
		}
		return ex, true, c.send(reply)
	case optAbort:
		// The client may already have closed; a failed ACK does not matter.
		c.optReply(opt, repAck, nil)
		return nil, true, nil
	case optList:
		return nil, false, c.list(data)
	case optInfo, optGo:
		ex, err := c.info(opt, data)
		if err != nil || ex == nil || opt == optInfo {
			return nil, false, err
		}
		return ex, true, nil
	case optStructuredReply:
		return nil, false, c.optReply(opt, repErrUnsup, []byte("structured replies are not supported; simple replies only"))
	default:
		return nil, false, c.optReply(opt, repErrUnsup, fmt.Appendf(nil, "option %d is not supported", opt))
	}
}

func (c *conn) optReply(opt, typ uint32, data []byte) error {
	h := make([]byte, 20)
	be.PutUint64(h[0:], magicOptReply)
	be.PutUint32(h[8:], opt)
	be.PutUint32(h[12:], typ)
	be.PutUint32(h[16:], uint32(len(data)))
	return c.send(h, data)
}

// list answers NBD_OPT_LIST with one NBD_REP_SERVER per export, by name.
func (c *conn) list(data []byte) error {
	if len(data) != 0 {
		return c.optReply(optList, repErrInvalid, []byte("NBD_OPT_LIST takes no data"))
	}
	names := make([]string, 0, len(c.srv.Exports))
	for name := range c.srv.Exports {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		rep := be.AppendUint32(make([]byte, 0, 4+len(name)), uint32(len(name)))
		if err := c.optReply(optList, repServer, append(rep, name...)); err != nil {
			return err
		}
	}
	return c.optReply(optList, repAck, nil)
}

// info answers NBD_OPT_INFO or NBD_OPT_GO; it returns the export when the
// reply ended with NBD_REP_ACK.
func (c *conn) info(opt uint32, data []byte) (*export, error) {
	name, reqs, ok := parseInfo(data)
	if !ok {
		return nil, c.optReply(opt, repErrInvalid, []byte("malformed NBD_OPT_INFO/NBD_OPT_GO data"))
	}
	ex := c.lookup(name)
	if ex == nil {
		return nil, c.optReply(opt, repErrUnknown, fmt.Appendf(nil, "no export named %q; NBD_OPT_LIST shows the exports", clip(name)))
	}
	exp := be.AppendUint16(nil, infoExport)
	exp = be.AppendUint64(exp, ex.size)
	exp = be.AppendUint16(exp, transmissionFlagsSent)
	// Block sizes go out even unasked: the server enforces them, and the
	// spec allows unrequested information.
	bs := be.AppendUint16(nil, infoBlockSize)
	bs = be.AppendUint32(bs, ex.minBlock)
	bs = be.AppendUint32(bs, c.cfg.prefBlock)
	bs = be.AppendUint32(bs, c.cfg.maxReq)
	infos := [][]byte{exp, bs}
	for _, r := range reqs {
		switch r {
		case infoName:
			infos = append(infos, append(be.AppendUint16(nil, infoName), name...))
		case infoDescription:
			if d, ok := ex.backend.(Describer); ok && d.Description() != "" {
				desc := d.Description()
				infos = append(infos, append(be.AppendUint16(nil, infoDescription), desc[:min(len(desc), maxString)]...))
			}
		}
	}
	for _, in := range infos {
		if err := c.optReply(opt, repInfo, in); err != nil {
			return nil, err
		}
	}
	return ex, c.optReply(opt, repAck, nil)
}

// parseInfo splits NBD_OPT_INFO/GO data: 32-bit name length, name, 16-bit
// count, count 16-bit information requests, and nothing after.
func parseInfo(d []byte) (name string, reqs []uint16, ok bool) {
	if len(d) < 6 {
		return "", nil, false
	}
	n := uint64(be.Uint32(d))
	if n > uint64(len(d)-6) || n > maxString {
		return "", nil, false
	}
	name = string(d[4 : 4+n])
	rest := d[4+n:]
	count := int(be.Uint16(rest))
	rest = rest[2:]
	if len(rest) != 2*count {
		return "", nil, false
	}
	for i := range count {
		reqs = append(reqs, be.Uint16(rest[2*i:]))
	}
	return name, reqs, true
}
