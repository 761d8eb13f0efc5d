package nbd

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func twoExports() *Server {
	d0 := newMem(1<<20, 0)
	d0.desc = "first disk"
	return &Server{
		Exports:    map[string]Backend{"disk1": newMem(64<<10, 0), "disk0": d0, "": newMem(4096, 0)},
		MinBlock:   512,
		MaxRequest: 1 << 20,
	}
}

func TestGreetingListAndUnsupportedOptions(t *testing.T) {
	addr, _ := start(t, twoExports())
	c := dial(t, addr)
	if f := c.greet(); f != flagFixedNewstyle|flagNoZeroes {
		t.Fatalf("handshake flags %#x, want FIXED_NEWSTYLE|NO_ZEROES", f)
	}
	c.flags(clientFixedNewstyle)

	c.opt(optList, nil)
	var names []string
	for {
		typ, data := c.optReply(optList)
		if typ == repAck {
			break
		}
		if typ != repServer || len(data) < 4 || int(be.Uint32(data)) != len(data)-4 {
			t.Fatalf("LIST reply %#x %q", typ, data)
		}
		names = append(names, string(data[4:]))
	}
	if got := strings.Join(names, ","); got != ",disk0,disk1" {
		t.Fatalf("LIST names %q, want \",disk0,disk1\"", got)
	}

	for _, tc := range []struct {
		opt  uint32
		data []byte
		want uint32
	}{
		{optList, []byte("x"), repErrInvalid},
		{0x1234, []byte("some option data"), repErrUnsup},
		{optStructuredReply, nil, repErrUnsup},
		{optStartTLS, nil, repErrUnsup},
		{optSetMetaContext, infoData("disk0"), repErrUnsup},
		{optInfo, []byte{0, 0, 0, 9, 'd', 0, 0}, repErrInvalid}, // name longer than data
		{optInfo, append(infoData("disk0"), 0), repErrInvalid},  // trailing byte
		{optGo, []byte{0, 0}, repErrInvalid},                    // too short
	} {
		c.opt(tc.opt, tc.data)
		if typ, msg := c.optReply(tc.opt); typ != tc.want {
			t.Errorf("option %d data %q: reply %#x (%q), want %#x", tc.opt, tc.data, typ, msg, tc.want)
		}
	}

	// Still negotiating: an abort is acknowledged and the server hangs up.
	c.opt(optAbort, nil)
	if typ, _ := c.optReply(optAbort); typ != repAck {
		t.Fatalf("ABORT reply %#x", typ)
	}
	c.closed()
}

func TestInfoThenGo(t *testing.T) {
	addr, _ := start(t, twoExports())
	c := dial(t, addr)
	c.greet()
	c.flags(clientFixedNewstyle | clientNoZeroes)

	infos, typ, _ := c.info(optInfo, "disk0", infoName, infoDescription, infoBlockSize)
	if typ != repAck {
		t.Fatalf("INFO final reply %#x", typ)
	}
	ex := infos[infoExport]
	want := transmissionFlagsSent
	if len(ex) != 10 || be.Uint64(ex) != 1<<20 || be.Uint16(ex[8:]) != want {
		t.Fatalf("NBD_INFO_EXPORT %x, want size 1 MiB flags %#x", ex, want)
	}
	if want&tflagReadOnly != 0 || want&tflagCanMultiConn == 0 {
		t.Fatalf("transmission flags %#x", want)
	}
	bs := infos[infoBlockSize]
	if len(bs) != 12 || be.Uint32(bs) != 512 || be.Uint32(bs[4:]) != 4096 || be.Uint32(bs[8:]) != 1<<20 {
		t.Fatalf("NBD_INFO_BLOCK_SIZE %x, want 512/4096/1MiB", bs)
	}
	if string(infos[infoName]) != "disk0" || string(infos[infoDescription]) != "first disk" {
		t.Fatalf("name %q description %q", infos[infoName], infos[infoDescription])
	}

	// INFO did not end the handshake; GO does, with no padding after ACK.
	infos, typ, _ = c.info(optGo, "disk0")
	if typ != repAck || len(infos[infoExport]) != 10 {
		t.Fatalf("GO reply %#x infos %v", typ, infos)
	}
	if _, ok := infos[infoName]; ok {
		t.Fatal("NBD_INFO_NAME sent though not requested")
	}
	if errno, data := c.do(cmdRead, 0, 0, 512, nil); errno != 0 || len(data) != 512 {
		t.Fatalf("read after GO: errno %d, %d bytes", errno, len(data))
	}
	c.request(cmdDisc, 0, 1, 0, 0, nil)
	c.closed()
}

func TestUnknownExport(t *testing.T) {
	addr, log := start(t, twoExports())
	c := dial(t, addr)
	c.greet()
	c.flags(clientFixedNewstyle)
	for _, opt := range []uint32{optInfo, optGo} {
		infos, typ, msg := c.info(opt, "nope")
		if typ != repErrUnknown || len(infos) != 0 || !bytes.Contains(msg, []byte(`"nope"`)) {
			t.Fatalf("option %d for unknown export: reply %#x infos %v message %q", opt, typ, infos, msg)
		}
	}
	// EXPORT_NAME cannot carry an error: the server must hang up.
	c.opt(optExportName, []byte("nope"))
	c.closed()
	log.waitFor(t, ErrUnknownExport)
}

func TestExportNameZeroes(t *testing.T) {
	for _, noZeroes := range []bool{false, true} {
		addr, _ := start(t, twoExports())
		c := dial(t, addr)
		c.greet()
		flags := clientFixedNewstyle
		if noZeroes {
			flags |= clientNoZeroes
		}
		c.flags(flags)
		c.opt(optExportName, []byte("disk1"))
		r := c.readN(10)
		if be.Uint64(r) != 64<<10 || be.Uint16(r[8:]) != transmissionFlagsSent {
			t.Fatalf("EXPORT_NAME reply %x", r)
		}
		if !noZeroes {
			if pad := c.readN(124); !bytes.Equal(pad, make([]byte, 124)) {
				t.Fatalf("padding %x", pad)
			}
		}
		// The next bytes must be a reply, not padding.
		if errno, data := c.do(cmdRead, 0, 512, 512, nil); errno != 0 || len(data) != 512 {
			t.Fatalf("noZeroes=%v: read errno %d", noZeroes, errno)
		}
	}
}

func TestProtocolViolationsCloseTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(c *client)
	}{
		{"client flags", func(c *client) { c.flags(1 << 5) }},
		{"option magic", func(c *client) {
			c.flags(clientFixedNewstyle)
			c.write(append(be.AppendUint64(nil, 0x1122334455667788), 0, 0, 0, 3, 0, 0, 0, 0))
		}},
		{"option length", func(c *client) {
			c.flags(clientFixedNewstyle)
			b := be.AppendUint64(nil, magicOpt)
			b = be.AppendUint32(b, optInfo)
			c.write(be.AppendUint32(b, maxOptionData+1)) // no data follows
		}},
		{"request magic", func(c *client) {
			c.flags(clientFixedNewstyle | clientNoZeroes)
			if typ, _ := infoAck(c, "disk0"); typ != repAck {
				c.t.Fatalf("GO: %#x", typ)
			}
			c.write(make([]byte, 28))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, log := start(t, twoExports())
			c := dial(t, addr)
			c.greet()
			tc.send(c)
			c.closed()
			log.waitFor(t, ErrProtocol)
		})
	}
}

func infoAck(c *client, name string) (uint32, []byte) {
	_, typ, msg := c.info(optGo, name)
	return typ, msg
}

func TestUnalignedSizeAdvertisesMinimumOne(t *testing.T) {
	addr, _ := start(t, &Server{Exports: map[string]Backend{"odd": newMem(1000, 7)}, MinBlock: 512})
	c := dial(t, addr)
	c.greet()
	c.flags(clientFixedNewstyle)
	infos, typ, _ := c.info(optGo, "odd", infoBlockSize)
	if bs := infos[infoBlockSize]; typ != repAck || len(bs) != 12 || be.Uint32(bs) != 1 || be.Uint32(bs[8:]) != defaultMaxRequest {
		t.Fatalf("GO reply %#x block sizes %x, want minimum 1 and max 32 MiB", typ, bs)
	}
	// The tail is reachable with byte granularity.
	if errno, data := c.do(cmdRead, 0, 999, 1, nil); errno != 0 || !bytes.Equal(data, []byte{7}) {
		t.Fatalf("read last byte: errno %d data %x", errno, data)
	}
}

func TestConfigErrors(t *testing.T) {
	exports := map[string]Backend{"a": newMem(4096, 0)}
	for _, s := range []*Server{
		{Exports: exports, MinBlock: 3},
		{Exports: exports, MinBlock: 1 << 17},
		{Exports: exports, MinBlock: -512},
		{Exports: exports, MaxRequest: 1000},
		{Exports: exports, MaxRequest: 4096*3 + 512},
		{Exports: exports, MinBlock: 65536, MaxRequest: 4096 * 1000},
		{Exports: exports, MaxRequest: 2 << 30},
		{},
		{Exports: map[string]Backend{"nil": nil}},
		{Exports: map[string]Backend{strings.Repeat("n", 4097): newMem(512, 0)}},
	} {
		l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Serve(l); !errors.Is(err, ErrConfig) {
			t.Errorf("Serve with MinBlock %d MaxRequest %d: %v, want ErrConfig", s.MinBlock, s.MaxRequest, err)
		}
	}
}
