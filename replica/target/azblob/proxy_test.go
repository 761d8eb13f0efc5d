package azblob

import (
	"bytes"
	"errors"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/asr-project/asr/replica/target"
)

// faultProxy forwards loopback TCP to the emulator and breaks it on
// request: it resets a number of connections once they have carried some
// bytes in one direction, and delays every forwarded chunk.
type faultProxy struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup

	mu       sync.Mutex
	cuts     int   // connections still to reset
	cutAfter int64 // bytes a connection carries before its reset
	down     bool  // count server-to-client bytes, not client-to-server
	latency  time.Duration
	fired    int // resets done
	open     map[net.Conn]bool
}

func startProxy(t *testing.T, upstream string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, upstream: upstream, open: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// set arms the next cuts and the latency.
func (p *faultProxy) set(cuts int, after int64, down bool, latency time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts, p.cutAfter, p.down, p.latency, p.fired = cuts, after, down, latency, 0
}

func (p *faultProxy) firedCuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fired
}

// close stops accepting, resets every open connection and waits for the
// forwarding goroutines, so nothing outlives the test.
func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *faultProxy) handle(c net.Conn) {
	defer p.wg.Done()
	u, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.open[c], p.open[u] = true, true
	down := p.down
	p.mu.Unlock()
	var once sync.Once
	reset := func() {
		once.Do(func() {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST, as a dropped link shows
			}
			c.Close()
			u.Close()
			p.mu.Lock()
			delete(p.open, c)
			delete(p.open, u)
			p.mu.Unlock()
		})
	}
	var inner sync.WaitGroup
	inner.Add(1)
	go func() { defer inner.Done(); p.pipe(u, c, !down, reset) }()
	p.pipe(c, u, down, reset)
	reset()
	inner.Wait()
}

// pipe copies src to dst; when counted, it may reset the connection once
// cutAfter bytes have passed.
func (p *faultProxy) pipe(dst, src net.Conn, counted bool, reset func()) {
	defer reset()
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			lat, after := p.latency, p.cutAfter
			cut := counted && p.cuts > 0 && sent+int64(n) > after
			if cut {
				p.cuts--
				p.fired++
			}
			p.mu.Unlock()
			if lat > 0 {
				time.Sleep(lat)
			}
			if cut {
				_, _ = dst.Write(buf[:max(after-sent, 0)])
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			sent += int64(n)
		}
		if err != nil {
			return
		}
	}
}

// proxied opens a Target that reaches the emulator through a new proxy.
func proxied(t *testing.T, cs, cont string, o options) (*Target, *faultProxy) {
	t.Helper()
	f, _ := parseConnectionString(cs)
	ep, err := url.Parse(f["blobendpoint"])
	if err != nil || ep.Host == "" {
		t.Fatalf("the connection string has no usable BlobEndpoint")
	}
	p := startProxy(t, ep.Host)
	ep.Host = p.ln.Addr().String()
	return openAzurite(t, withEndpoint(t, cs, ep.String()), cont, "", o), p
}

func randomBytes(seed uint64, n int) []byte {
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// TestFaultCutUploads resets connections in the middle of 4 MiB Put Page
// bodies: the SDK's retries finish every write and the blob reads back
// exact through a direct connection.
func TestFaultCutUploads(t *testing.T) {
	cs := azurite(t)
	cont := testContainer(t, cs)
	tg, p := proxied(t, cs, cont, testOptions())
	direct := openAzurite(t, cs, cont, "", testOptions())
	ctx := t.Context()
	const size = 12 << 20
	if err := tg.CreateDisk(ctx, "d", size); err != nil {
		t.Fatal(err)
	}
	want := randomBytes(1, size)
	p.set(4, 1<<20, false, time.Millisecond) // each of the first 4 bodies dies after 1 MiB
	for off := int64(0); off < size; off += target.MaxWrite {
		if err := tg.WritePages(ctx, "d", off, want[off:off+target.MaxWrite]); err != nil {
			t.Fatalf("WritePages at %d through cut connections: %v", off, err)
		}
	}
	if n := p.firedCuts(); n != 4 {
		t.Fatalf("the proxy cut %d connections, want 4: the test did not exercise retries", n)
	}
	got := make([]byte, size)
	if err := direct.ReadAt(ctx, "d", "", got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the blob differs from what was written (first byte %d)", firstDiffAt(got, want))
	}
}

// TestFaultCutDownloads resets connections in the middle of a 4 MiB read:
// the read resumes where it broke off.
func TestFaultCutDownloads(t *testing.T) {
	cs := azurite(t)
	cont := testContainer(t, cs)
	tg, p := proxied(t, cs, cont, testOptions())
	ctx := t.Context()
	const size = 4 << 20
	want := randomBytes(2, size)
	if err := tg.CreateDisk(ctx, "d", size); err != nil {
		t.Fatal(err)
	}
	if err := tg.WritePages(ctx, "d", 0, want); err != nil {
		t.Fatal(err)
	}
	p.set(2, 1<<20, true, 0)
	got := make([]byte, size)
	if err := tg.ReadAt(ctx, "d", "", got, 0); err != nil {
		t.Fatalf("ReadAt through cut connections: %v", err)
	}
	if n := p.firedCuts(); n != 2 {
		t.Fatalf("the proxy cut %d connections, want 2", n)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the read differs from what was written (first byte %d)", firstDiffAt(got, want))
	}
}

// TestFaultSlowAndGone: a link slower than the per-try timeout, and a
// target that is gone, are both ErrUnavailable, in bounded time.
func TestFaultSlowAndGone(t *testing.T) {
	cs := azurite(t)
	o := testOptions()
	o.retry = policy.RetryOptions{MaxRetries: 1, TryTimeout: 100 * time.Millisecond, RetryDelay: 10 * time.Millisecond}
	tg, p := proxied(t, cs, testContainer(t, cs), o)
	ctx := t.Context()
	if err := tg.PutObject(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	p.set(0, 0, false, 300*time.Millisecond)
	start := time.Now()
	_, err := tg.GetObject(ctx, "k")
	if !errors.Is(err, target.ErrUnavailable) {
		t.Errorf("GetObject over a slow link: error %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("GetObject over a slow link took %v; the per-try timeout did not bound it", d)
	}
	p.set(0, 0, false, 0)
	p.close()
	tg.Close() // drop kept-alive connections to the closed proxy
	if _, err := tg.GetObject(ctx, "k"); !errors.Is(err, target.ErrUnavailable) {
		t.Errorf("GetObject with the target gone: error %v, want ErrUnavailable", err)
	}
}

func firstDiffAt(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
