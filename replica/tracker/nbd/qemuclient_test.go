package nbd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The Client against a real qemu-nbd serving qcow2 images, against this
// package's Server (simple replies only), and against a scripted server
// that sends what qemu never would.

// qemuNBD is a qemu-nbd child serving one image as export "disk".
type qemuNBD struct {
	cmd    *exec.Cmd
	sock   string
	stderr bytes.Buffer
}

func startQemuNBD(t *testing.T, image string) *qemuNBD {
	t.Helper()
	bin := needTool(t, "qemu-nbd")
	q := &qemuNBD{sock: filepath.Join(t.TempDir(), "s")}
	q.cmd = exec.Command(bin, "--socket="+q.sock, "--format=qcow2", "--export-name=disk",
		"--persistent", "--shared=4", "--discard=unmap", image)
	q.cmd.Stderr = &q.stderr
	if err := q.cmd.Start(); err != nil {
		t.Fatalf("start qemu-nbd: %v", err)
	}
	t.Cleanup(func() { q.stop(t, syscall.SIGKILL) })
	return q
}

// stop signals qemu-nbd by its PID and waits for it; SIGTERM lets it close
// the image cleanly. Stopping twice is harmless.
func (q *qemuNBD) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if q.cmd.ProcessState != nil {
		return
	}
	if err := syscall.Kill(q.cmd.Process.Pid, sig); err != nil {
		t.Errorf("signal qemu-nbd (pid %d): %v", q.cmd.Process.Pid, err)
	}
	q.cmd.Wait()
}

// dial connects once qemu-nbd listens.
func (q *qemuNBD) dial(t *testing.T) *Client {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := Dial(ctx, q.sock, "disk")
		cancel()
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		if time.Now().After(deadline) || !(errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
			t.Fatalf("Dial qemu-nbd: %v\nqemu-nbd stderr: %s", err, q.stderr.String())
		}
	}
}

// newQcow2 creates a qcow2 image of size bytes and runs qemu-io commands on it.
func newQcow2(t *testing.T, path string, size string, cmds ...string) {
	t.Helper()
	runTool(t, needTool(t, "qemu-img"), "create", "-q", "-f", "qcow2", path, size)
	qemuIO(t, path, cmds...)
}

func qemuIO(t *testing.T, path string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "qcow2"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	if out := runTool(t, needTool(t, "qemu-io"), append(args, path)...); strings.Contains(out, "failed") {
		t.Fatalf("qemu-io %v: %s", cmds, out)
	}
}

// rawOf is what qemu-img convert reads from an image.
func rawOf(t *testing.T, image string) []byte {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "raw")
	runTool(t, needTool(t, "qemu-img"), "convert", "-O", "raw", image, raw)
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type mapEntry struct {
	Start, Length int64
	Data, Zero    bool
}

func qemuMap(t *testing.T, image string) []mapEntry {
	t.Helper()
	var m []mapEntry
	out := runTool(t, needTool(t, "qemu-img"), "map", "--output=json", image)
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	return m
}

// checkAllocation compares BlockStatus of the whole disk with qemu-img map:
// the extents tile the disk, Zero equals map's zero, data is never a hole.
func checkAllocation(t *testing.T, c *Client, want []mapEntry) []Extent {
	t.Helper()
	got, err := c.BlockStatus(0, c.Size())
	if err != nil {
		t.Fatalf("BlockStatus: %v", err)
	}
	at := int64(0)
	for _, e := range got {
		if e.Off != at || e.Len <= 0 {
			t.Fatalf("extents %v do not tile the disk at %d", got, at)
		}
		at += e.Len
	}
	if at != c.Size() {
		t.Fatalf("extents %v end at %d, disk is %d", got, at, c.Size())
	}
	for _, m := range want {
		for off := m.Start; off < m.Start+m.Length; off += 512 {
			e := extentAt(got, off)
			if e.Zero != m.Zero || (m.Data && e.Hole) {
				t.Fatalf("at %d: extent %+v, qemu-img map says %+v", off, e, m)
			}
		}
	}
	return got
}

func extentAt(es []Extent, off int64) Extent {
	for _, e := range es {
		if off >= e.Off && off < e.Off+e.Len {
			return e
		}
	}
	return Extent{}
}

// readAll reads [off, off+n) into a buffer first filled with 0xee, so bytes
// a reply left alone (a hole not zero-filled) show.
func readAll(t *testing.T, c *Client, off, n int64) []byte {
	t.Helper()
	p := bytes.Repeat([]byte{0xee}, int(n))
	if got, err := c.ReadAt(p, off); err != nil || got != len(p) {
		t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", n, off, got, err)
	}
	return p
}

func TestClientQemuNBD(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "disk.qcow2")
	const size = 8 << 20
	newQcow2(t, image, "8M", "write -P 0x5a 1M 3M", "write -P 0xa5 6M 64k", "write -z 7M 512k")
	model := rawOf(t, image)
	allocation := qemuMap(t, image)
	q := startQemuNBD(t, image)
	c := q.dial(t)

	if c.Size() != size || !c.structured || !c.hasAlloc {
		t.Fatalf("Size %d structured %t base:allocation %t; want %d, true, true", c.Size(), c.structured, c.hasAlloc, size)
	}
	minB, prefB, maxB := c.BlockSize()
	t.Logf("qemu-nbd block sizes: minimum %d, preferred %d, maximum %d", minB, prefB, maxB)
	if _, err := Dial(context.Background(), q.sock, "nope"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `does not offer export "nope"`) {
		t.Fatalf("Dial of an unknown export: %v", err)
	}

	t.Run("read", func(t *testing.T) {
		if !bytes.Equal(readAll(t, c, 0, size), model) {
			t.Fatal("ReadAt of the whole disk differs from qemu-img convert")
		}
		// Across the hole at 0-1M into the data: OFFSET_HOLE and OFFSET_DATA.
		if got := readAll(t, c, 512<<10, 1<<20); !bytes.Equal(got, model[512<<10:512<<10+1<<20]) || got[0] != 0 || got[len(got)-1] != 0x5a {
			t.Fatal("read spanning a hole and data differs from the image")
		}
		saved := c.maxReq
		c.maxReq = 192 << 10 // many pieces, the last one short
		defer func() { c.maxReq = saved }()
		if !bytes.Equal(readAll(t, c, 0, size), model) {
			t.Fatal("ReadAt split into 192 KiB requests differs from qemu-img convert")
		}
	})

	t.Run("past the end", func(t *testing.T) {
		p := make([]byte, 4096)
		if n, err := c.ReadAt(p, size-1024); n != 1024 || err != io.EOF || !bytes.Equal(p[:n], model[size-1024:]) {
			t.Fatalf("ReadAt over the end = %d, %v; want 1024, io.EOF", n, err)
		}
		if n, err := c.ReadAt(p, size); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt at the end = %d, %v; want 0, io.EOF", n, err)
		}
		if _, err := c.WriteAt(p, size-1024); !errors.Is(err, ErrRange) {
			t.Fatalf("WriteAt over the end: %v, want ErrRange", err)
		}
		if _, err := c.BlockStatus(size-512, 1024); !errors.Is(err, ErrRange) {
			t.Fatalf("BlockStatus over the end: %v, want ErrRange", err)
		}
		// Sent anyway, qemu refuses it; the error is the request's only.
		err := c.do(&call{typ: cmdRead, off: size - 512, length: 4096, buf: p}, nil)
		if !errors.Is(err, ErrRequest) || !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("READ past the end sent to qemu: %v, want ErrRequest and EINVAL", err)
		}
		readAll(t, c, 0, 4096) // the session goes on
	})

	t.Run("block status", func(t *testing.T) {
		got := checkAllocation(t, c, allocation)
		if e := extentAt(got, 0); !e.Hole || !e.Zero || e.Len != 1<<20 {
			t.Fatalf("first extent %+v, want a 1 MiB zero hole", e)
		}
		if e := extentAt(got, 1<<20); e.Hole || e.Zero || e.Len != 3<<20 {
			t.Fatalf("extent at 1M %+v, want 3 MiB of data", e)
		}
		sub, err := c.BlockStatus(1<<20+4096, 8192)
		if err != nil || len(sub) != 1 || sub[0] != (Extent{Off: 1<<20 + 4096, Len: 8192}) {
			t.Fatalf("BlockStatus inside the data = %+v, %v", sub, err)
		}
	})

	t.Run("write, zero, trim", func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		p := make([]byte, 100<<10)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		if n, err := c.WriteAt(p, 2<<20+4096); n != len(p) || err != nil {
			t.Fatalf("WriteAt = %d, %v", n, err)
		}
		copy(model[2<<20+4096:], p)
		if err := c.WriteZeroes(1<<20+64<<10, 128<<10); err != nil {
			t.Fatalf("WriteZeroes: %v", err)
		}
		clear(model[1<<20+64<<10 : 1<<20+192<<10])
		if err := c.Trim(3<<20, 128<<10); err != nil { // whole qcow2 clusters
			t.Fatalf("Trim: %v", err)
		}
		clear(model[3<<20 : 3<<20+128<<10])
		if err := c.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		if !bytes.Equal(readAll(t, c, 0, size), model) {
			t.Fatal("disk differs from the model after WriteAt, WriteZeroes and Trim")
		}
		st, err := c.BlockStatus(3<<20, 128<<10)
		// Whether qemu calls them holes depends on its version; zero they are.
		if err != nil || len(st) != 1 || !st[0].Zero {
			t.Fatalf("BlockStatus of the trimmed clusters = %+v, %v; want one zero extent", st, err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		const workers, region = 16, size / 16
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 99))
				mine := model[w*region : (w+1)*region] // this worker's part only
				for range 40 {
					off := r.IntN(region/512) * 512
					n := min(512*(1+r.IntN(128)), region-off)
					abs := int64(w*region + off)
					if r.IntN(2) == 0 {
						p := make([]byte, n)
						for i := range p {
							p[i] = byte(r.Uint32())
						}
						if _, err := c.WriteAt(p, abs); err != nil {
							errs <- err
							return
						}
						copy(mine[off:], p)
						continue
					}
					p := make([]byte, n)
					if _, err := c.ReadAt(p, abs); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(p, mine[off:off+n]) {
						errs <- errors.New("a concurrent read differs from what was written")
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if !bytes.Equal(readAll(t, c, 0, size), model) {
			t.Fatal("disk differs from the model after concurrent writes")
		}
	})

	// The writes reached the qcow2 file itself: qemu-img compare agrees with
	// a raw file changed the same way, once qemu-nbd closed the image.
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("ReadAt after Close: %v, want ErrDisconnected", err)
	}
	q.stop(t, syscall.SIGTERM)
	raw := filepath.Join(dir, "model.raw")
	if err := os.WriteFile(raw, model, 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, needTool(t, "qemu-img"), "compare", "-f", "qcow2", "-F", "raw", image, raw)
}

func TestClientQemuNBDBackingFile(t *testing.T) {
	dir := t.TempDir()
	base, overlay := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "overlay.qcow2")
	newQcow2(t, base, "4M", "write -P 0x11 0 2M", "write -P 0x22 3M 512k")
	runTool(t, needTool(t, "qemu-img"), "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay)
	qemuIO(t, overlay, "write -P 0x33 1M 256k", "write -z 3M 64k")
	want := rawOf(t, overlay)
	allocation := qemuMap(t, overlay)
	c := startQemuNBD(t, overlay).dial(t)

	if !bytes.Equal(readAll(t, c, 0, c.Size()), want) {
		t.Fatal("ReadAt of the overlay differs from qemu-img convert")
	}
	if want[0] != 0x11 || want[1<<20] != 0x33 || want[3<<20] != 0 || want[3<<20+64<<10] != 0x22 {
		t.Fatal("the image does not hold the layers the test wrote")
	}
	checkAllocation(t, c, allocation)
}

func TestClientQemuNBDKilled(t *testing.T) {
	image := filepath.Join(t.TempDir(), "disk.qcow2")
	newQcow2(t, image, "4M", "write -P 0x5a 0 4M")
	q := startQemuNBD(t, image)
	c := q.dial(t)

	const readers = 16
	errs := make(chan error, readers)
	for i := range readers {
		go func() {
			p := make([]byte, 64<<10)
			for {
				if _, err := c.ReadAt(p, int64(i%64)<<16); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	killed := time.Now()
	q.stop(t, syscall.SIGKILL)
	for range readers {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrDisconnected) || !strings.Contains(err.Error(), q.sock) {
				t.Fatalf("a read in flight when qemu-nbd died: %v; want ErrDisconnected naming %s", err, q.sock)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("reads in flight did not return within 3 s of qemu-nbd's death")
		}
	}
	for _, call := range []func() error{
		func() error { _, err := c.WriteAt(make([]byte, 512), 0); return err },
		c.Flush,
		func() error { _, err := c.BlockStatus(0, 4096); return err },
	} {
		if err := call(); !errors.Is(err, ErrDisconnected) {
			t.Fatalf("a call after qemu-nbd died: %v, want ErrDisconnected", err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close after the server died: %v", err)
	}
	if d := time.Since(killed); d > 3*time.Second {
		t.Fatalf("calls and Close took %v after qemu-nbd died", d)
	}
}

// Against this package's Server, which has no structured replies: reads
// take simple replies and BlockStatus is unsupported.
func TestClientSimpleReplies(t *testing.T) {
	m := newMem(1<<20, 0x11)
	addr, _ := start(t, &Server{Exports: map[string]Backend{"mem": m}, MinBlock: 512, MaxRequest: 64 << 10})
	c, err := Dial(context.Background(), addr, "mem")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if minB, _, maxB := c.BlockSize(); c.structured || c.hasAlloc || minB != 512 || maxB != 64<<10 || c.Size() != 1<<20 {
		t.Fatalf("structured %t alloc %t block sizes %d/%d size %d", c.structured, c.hasAlloc, minB, maxB, c.Size())
	}
	p := pattern(200<<10, 3) // the server refuses requests over 64 KiB
	if _, err := c.WriteAt(p, 4096); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteZeroes(8192, 100<<10); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0x11}, 1<<20)
	copy(want[4096:], p)
	clear(want[8192 : 8192+100<<10])
	if data, durable, _ := m.snapshot(); !bytes.Equal(data, want) || !bytes.Equal(durable, want) {
		t.Fatal("backend differs from what the client wrote and flushed")
	}
	if !bytes.Equal(readAll(t, c, 0, 1<<20), want) {
		t.Fatal("ReadAt differs from the backend")
	}
	if _, err := c.ReadAt(make([]byte, 100), 0); !errors.Is(err, ErrRange) {
		t.Fatalf("unaligned ReadAt: %v, want ErrRange", err)
	}
	if _, err := c.BlockStatus(0, 4096); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("BlockStatus without base:allocation: %v, want errors.ErrUnsupported", err)
	}
	m.mu.Lock()
	m.readErr = syscall.EIO
	m.mu.Unlock()
	if _, err := c.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrRequest) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("ReadAt of a failing backend: %v, want ErrRequest and EIO", err)
	}
	if _, err := Dial(context.Background(), addr, "nope"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `no export named \"nope\"`) {
		t.Fatalf("Dial of an unknown export: %v", err)
	}
}

// fakeServer serves one client on a Unix socket: structured replies,
// base:allocation as context 9, a 1 MiB export, then each READ or
// BLOCK_STATUS answered with the bytes reply returns (FLUSH gets a plain
// success). disc is closed when the client sends NBD_CMD_DISC.
func fakeServer(t *testing.T, reply func(typ uint16, cookie, off uint64, length uint32) []byte) (sock string, disc <-chan struct{}) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	discSeen := make(chan struct{})
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		greet := be.AppendUint64(be.AppendUint64(nil, magicInit), magicOpt)
		nc.Write(be.AppendUint16(greet, flagFixedNewstyle|flagNoZeroes))
		var h [28]byte
		if _, err := io.ReadFull(nc, h[:4]); err != nil {
			return
		}
		for opt := uint32(0); opt != optGo; {
			if _, err := io.ReadFull(nc, h[:16]); err != nil {
				return
			}
			opt = be.Uint32(h[8:])
			if _, err := io.CopyN(io.Discard, nc, int64(be.Uint32(h[12:]))); err != nil {
				return
			}
			rep := func(typ uint32, data []byte) {
				b := be.AppendUint32(be.AppendUint64(nil, magicOptReply), opt)
				b = be.AppendUint32(be.AppendUint32(b, typ), uint32(len(data)))
				nc.Write(append(b, data...))
			}
			switch opt {
			case optSetMetaContext:
				rep(repMetaContext, append(be.AppendUint32(nil, 9), metaBaseAllocation...))
			case optGo:
				info := be.AppendUint64(be.AppendUint16(nil, infoExport), 1<<20)
				rep(repInfo, be.AppendUint16(info, tflagHasFlags|tflagSendFlush))
			}
			rep(repAck, nil)
		}
		for {
			if _, err := io.ReadFull(nc, h[:]); err != nil {
				return
			}
			typ, cookie := be.Uint16(h[6:]), be.Uint64(h[8:])
			switch typ {
			case cmdDisc:
				close(discSeen)
				return
			case cmdFlush:
				nc.Write(simpleReply(cookie, 0))
			default:
				nc.Write(reply(typ, cookie, be.Uint64(h[16:]), be.Uint32(h[24:])))
			}
		}
	}()
	return sock, discSeen
}

func simpleReply(cookie uint64, errno uint32) []byte {
	return be.AppendUint64(be.AppendUint32(be.AppendUint32(nil, magicSimpleReply), errno), cookie)
}

// chunk builds a structured reply chunk; its payload is the parts joined.
func chunk(flags, typ uint16, cookie uint64, parts ...[]byte) []byte {
	payload := bytes.Join(parts, nil)
	b := be.AppendUint16(be.AppendUint32(nil, magicStructuredReply), flags)
	b = be.AppendUint32(be.AppendUint64(be.AppendUint16(b, typ), cookie), uint32(len(payload)))
	return append(b, payload...)
}

func u16(v uint16) []byte { return be.AppendUint16(nil, v) }
func u32(v uint32) []byte { return be.AppendUint32(nil, v) }
func u64(v uint64) []byte { return be.AppendUint64(nil, v) }

// Replies qemu never sends: the client must assemble the valid ones, fail
// just the request on an error chunk, and hang up on anything else.
func TestClientChecksReplies(t *testing.T) {
	const done = replyFlagDone
	data := func(n int) []byte { return bytes.Repeat([]byte{0x77}, n) }
	errChunk := func(errno uint32, msg string) []byte {
		return append(append(u32(errno), u16(uint16(len(msg)))...), msg...)
	}
	// Each case reads 4096 bytes at 8192, or asks the status of that range.
	cases := []struct {
		name   string
		status bool
		reply  func(c, off uint64) []byte
		want   []byte   // read data
		extent []Extent // block status
		errno  syscall.Errno
		bad    bool
	}{
		{name: "hole then data", reply: func(c, off uint64) []byte {
			return append(chunk(0, chunkOffsetHole, c, u64(off), u32(1024)), chunk(done, chunkOffsetData, c, u64(off+1024), data(3072))...)
		}, want: append(make([]byte, 1024), data(3072)...)},
		{name: "data out of order then none", reply: func(c, off uint64) []byte {
			b := append(chunk(0, chunkOffsetData, c, u64(off+2048), data(2048)), chunk(0, chunkOffsetData, c, u64(off), data(2048))...)
			return append(b, chunk(done, chunkNone, c)...)
		}, want: data(4096)},
		{name: "simple error reply", reply: func(c, off uint64) []byte { return simpleReply(c, nbdENOSPC) }, errno: syscall.ENOSPC},
		{name: "error offset", reply: func(c, off uint64) []byte {
			return chunk(done, chunkErrorOffset, c, errChunk(nbdEIO, "boom"), u64(off+100))
		}, errno: syscall.EIO},
		{name: "unknown error type", reply: func(c, off uint64) []byte {
			return chunk(done, chunkErrorBit|99, c, errChunk(1234, ""), data(10))
		}, errno: syscall.EINVAL},
		{name: "data outside the request", bad: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkOffsetData, c, u64(off+2048), data(4096))
		}},
		{name: "empty hole", bad: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkOffsetHole, c, u64(off), u32(0))
		}},
		{name: "overlap", bad: true, reply: func(c, off uint64) []byte {
			b := append(chunk(0, chunkOffsetData, c, u64(off), data(2048)), chunk(0, chunkOffsetData, c, u64(off+1024), data(2048))...)
			return append(b, chunk(done, chunkOffsetHole, c, u64(off+3072), u32(1024))...) // as many bytes as asked
		}},
		{name: "gap", bad: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkOffsetData, c, u64(off), data(2048))
		}},
		{name: "unknown chunk type", bad: true, reply: func(c, off uint64) []byte { return chunk(done, 77, c) }},
		{name: "none not final", bad: true, reply: func(c, off uint64) []byte { return chunk(0, chunkNone, c) }},
		{name: "error message longer than the chunk", bad: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkError, c, u32(nbdEIO), u16(100))
		}},
		{name: "error offset outside the request", bad: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkErrorOffset, c, errChunk(nbdEIO, ""), u64(off+4096))
		}},
		{name: "unknown cookie", bad: true, reply: func(c, off uint64) []byte { return chunk(done, chunkNone, c+1000) }},
		{name: "simple reply with data", bad: true, reply: func(c, off uint64) []byte { return simpleReply(c, 0) }},
		{name: "status clipped", status: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkBlockStatus, c, u32(9), u32(1024), u32(stateHole|stateZero), u32(1<<20), u32(0))
		}, extent: []Extent{{Off: 8192, Len: 1024, Hole: true, Zero: true}, {Off: 9216, Len: 3072}}},
		{name: "status answered in parts", status: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkBlockStatus, c, u32(9), u32(1024), u32(stateZero))
		}, extent: []Extent{{Off: 8192, Len: 4096, Zero: true}}},
		{name: "status of another context", status: true, bad: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkBlockStatus, c, u32(3), u32(4096), u32(0))
		}},
		{name: "status with an empty extent", status: true, bad: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkBlockStatus, c, u32(9), u32(0), u32(0))
		}},
		{name: "status data chunk", status: true, bad: true, reply: func(c, off uint64) []byte {
			return chunk(done, chunkOffsetData, c, u64(off), data(4096))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sock, _ := fakeServer(t, func(typ uint16, cookie, off uint64, length uint32) []byte { return tc.reply(cookie, off) })
			c, err := Dial(context.Background(), sock, "x")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := bytes.Repeat([]byte{0xee}, 4096)
			var extents []Extent
			if tc.status {
				extents, err = c.BlockStatus(8192, 4096)
			} else {
				_, err = c.ReadAt(buf, 8192)
			}
			switch {
			case tc.bad:
				if !errors.Is(err, ErrDisconnected) || !errors.Is(err, ErrBadServer) {
					t.Fatalf("got %v, want ErrDisconnected wrapping ErrBadServer", err)
				}
				if err := c.Flush(); !errors.Is(err, ErrDisconnected) {
					t.Fatalf("Flush after the hang-up: %v, want ErrDisconnected", err)
				}
				return
			case tc.errno != 0:
				if !errors.Is(err, ErrRequest) || !errors.Is(err, tc.errno) {
					t.Fatalf("got %v, want ErrRequest and %v", err, tc.errno)
				}
			case err != nil:
				t.Fatal(err)
			case tc.status && !slices.Equal(extents, tc.extent):
				t.Fatalf("extents %+v, want %+v", extents, tc.extent)
			case !tc.status && !bytes.Equal(buf, tc.want):
				t.Fatalf("read %x..., want %x...", buf[:16], tc.want[:16])
			}
			if err := c.Flush(); err != nil {
				t.Fatalf("Flush after the reply: %v; the session should go on", err)
			}
		})
	}
}

// NBD_ESHUTDOWN fails its request, and the client hangs up as the spec asks.
func TestClientHangsUpOnShutdown(t *testing.T) {
	sock, disc := fakeServer(t, func(typ uint16, cookie, off uint64, length uint32) []byte {
		return simpleReply(cookie, nbdESHUTDOWN)
	})
	c, err := Dial(context.Background(), sock, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrRequest) || !errors.Is(err, syscall.ESHUTDOWN) {
		t.Fatalf("ReadAt: %v, want ErrRequest and ESHUTDOWN", err)
	}
	select {
	case <-disc:
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not send NBD_CMD_DISC after NBD_ESHUTDOWN")
	}
	if err := c.Flush(); !errors.Is(err, ErrDisconnected) || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("Flush after NBD_ESHUTDOWN: %v, want ErrDisconnected saying the server is shutting down", err)
	}
}

// Dial gives up when its context ends, even if the server never greets.
func TestClientDialHonoursContext(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock) // never accepted: the greeting never comes
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	dialed := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, sock, "x")
		dialed <- err
	}()
	select {
	case err := <-dialed:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial with a silent server: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Dial with a silent server still waits 3 s after its 100ms context ended")
	}
}
