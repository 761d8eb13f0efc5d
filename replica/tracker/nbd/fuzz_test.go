package nbd

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// sessionSeed builds a well-formed session: GO on "d", then the requests.
func sessionSeed(reqs ...[]byte) []byte {
	b := be.AppendUint32(nil, clientFixedNewstyle|clientNoZeroes)
	b = be.AppendUint64(b, magicOpt)
	d := infoData("d", infoBlockSize, infoName)
	b = be.AppendUint32(b, optGo)
	b = be.AppendUint32(b, uint32(len(d)))
	b = append(b, d...)
	for _, r := range reqs {
		b = append(b, r...)
	}
	return b
}

func reqBytes(typ, flags uint16, off uint64, length uint32, payload []byte) []byte {
	b := be.AppendUint32(nil, magicRequest)
	b = be.AppendUint16(b, flags)
	b = be.AppendUint16(b, typ)
	b = be.AppendUint64(b, 1)
	b = be.AppendUint64(b, off)
	b = be.AppendUint32(b, length)
	return append(b, payload...)
}

// FuzzSession feeds arbitrary client bytes to one connection: the server
// must neither panic nor hang, whatever arrives.
func FuzzSession(f *testing.F) {
	f.Add(sessionSeed(reqBytes(cmdRead, 0, 0, 512, nil)))
	f.Add(sessionSeed(reqBytes(cmdWrite, cmdFlagFUA, 512, 512, make([]byte, 512)), reqBytes(cmdFlush, 0, 0, 0, nil)))
	f.Add(sessionSeed(reqBytes(cmdWrite, 0, 0, 1<<31, nil)))
	f.Add(sessionSeed(reqBytes(cmdWriteZeroes, cmdFlagNoHole, 0, 4096, nil), reqBytes(cmdTrim, 0, 1<<63, 512, nil), reqBytes(cmdDisc, 0, 0, 0, nil)))
	f.Add([]byte{0, 0, 0, 1, 'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T', 0, 0, 0, 3, 0, 0, 0, 0})
	f.Add(append(sessionSeed()[:4], be.AppendUint64(nil, magicOpt)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Server{Exports: map[string]Backend{"d": newMem(64<<10, 0)}, MinBlock: 512, MaxRequest: 16 << 10}
		cfg, err := s.config()
		if err != nil {
			t.Fatal(err)
		}
		srvSide, cliSide := net.Pipe()
		c := &conn{srv: s, cfg: cfg, nc: srvSide, br: bufio.NewReader(srvSide)}
		c.lim.init(workersPerConn, cfg.budget)
		go io.Copy(io.Discard, cliSide)
		done := make(chan struct{})
		go func() {
			c.run()
			c.inflight.Wait()
			srvSide.Close()
			close(done)
		}()
		cliSide.SetWriteDeadline(time.Now().Add(5 * time.Second))
		cliSide.Write(in)
		// Give the server what it already read, then hang up.
		time.Sleep(time.Millisecond)
		cliSide.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection did not wind down after the client hung up")
		}
	})
}
