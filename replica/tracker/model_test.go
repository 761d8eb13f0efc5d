package tracker

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/vhd"
)

// The write path against a model: a byte array gets the same writes, and
// after a clean stop, a kill or a host crash the disk, the replayed logs
// and the model must agree. Every run prints its seed; ASR_SEED replays one.

const modelSize = 4 << 20

// small activity-log extents so a 4 MiB disk has many and a run evicts.
// The logs may grow past half the disk: these tests are about order and
// crashes, not the space bound.
var modelOpt = Options{ExtentSize: 64 << 10, Extents: 16, MaxLogBytes: 1 << 40}

func seed(t *testing.T) uint64 {
	s := rand.Uint64()
	if v := os.Getenv("ASR_SEED"); v != "" {
		fmt.Sscan(v, &s)
	}
	t.Logf("seed %d (replay with ASR_SEED=%d)", s, s)
	return s
}

func modelDisk(t *testing.T) DiskSpec {
	t.Helper()
	p := filepath.Join(t.TempDir(), "os.vhd")
	d, err := vhd.CreateFixed(p, modelSize)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	return DiskSpec{Name: "os", Path: p, Size: modelSize, AppliedID: uuid.New()}
}

// chainImage replays every log of the disk from spec's chain start and
// returns the image, failing the test on any gap, break or bad log.
func chainImage(t *testing.T, spec DiskSpec) []byte {
	t.Helper()
	files, err := Logs(spec.Path)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*hrl.Log
	for i, f := range files {
		if f.Seq != uint64(i+1) {
			t.Fatalf("log %d is missing (found %s)", i+1, f.Path)
		}
		l, err := hrl.Open(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
	}
	if err := hrl.CheckChain(logs, spec.AppliedID); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, modelSize)
	for _, e := range hrl.Coalesce(logs) {
		data, err := readFileAt(logs[e.Log].Path, e.FileOff, e.Len)
		if err != nil {
			t.Fatal(err)
		}
		copy(img[e.Off:], data)
	}
	return img
}

func diskImage(t *testing.T, path string) []byte {
	t.Helper()
	d, err := vhd.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	img := make([]byte, d.Size())
	if _, err := d.ReadAt(img, 0); err != nil {
		t.Fatal(err)
	}
	return img
}

func same(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s differs at byte %d (%#x, want %#x)", what, i, got[i], want[i])
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// load writes random sector-aligned ranges from g goroutines, n writes
// each, inside [0, span); every write's bytes are unique, so a replay in
// another order shows. With a model, each goroutine keeps to its own
// stripe of the span and the model receives each acknowledged write;
// without one, the writes overlap freely.
type load struct {
	crashed atomic.Bool // errors after a crash are the crash's, not the tracker's
	model   []byte
	base    int64 // where the span starts
}

func (l *load) run(d *Disk, r *rand.Rand, g, n int, span int64, flushEvery int) error {
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for i := range g {
		lo, width := l.base, span
		if l.model != nil {
			width = span / int64(g) / 512 * 512
			lo = l.base + int64(i)*width
		}
		wg.Add(1)
		go func(r *rand.Rand) {
			defer wg.Done()
			for k := range n {
				off := lo + r.Int64N(width/512)*512
				ln := min((1+r.Int64N(128))*512, lo+width-off)
				p := make([]byte, ln)
				for j := range p {
					p[j] = byte(r.Uint32())
				}
				if _, err := d.WriteAt(p, off); errors.Is(err, ErrClosed) {
					return // crashed: this write was never acknowledged
				} else if err != nil {
					if !l.crashed.Load() {
						errs <- err
					}
					return
				}
				if l.model != nil {
					copy(l.model[off-l.base:], p)
				}
				if flushEvery > 0 && k%flushEvery == flushEvery-1 {
					if err := d.Flush(); errors.Is(err, ErrClosed) {
						return
					} else if err != nil {
						if !l.crashed.Load() {
							errs <- err
						}
						return
					}
				}
			}
		}(rand.New(rand.NewPCG(r.Uint64(), uint64(i))))
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func TestOverlappingWritesReachLogAndDiskInOneOrder(t *testing.T) {
	spec := modelDisk(t)
	r := rand.New(rand.NewPCG(seed(t), 1))
	opt := modelOpt
	opt.jitter = jitter
	tr, err := Start([]DiskSpec{spec}, opt)
	if err != nil {
		t.Fatal(err)
	}
	l := &load{}
	// 16 goroutines on 256 KiB: nearly every write overlaps one in flight.
	for round := range 4 {
		if err := l.run(tr.Disks()[0], r, 16, 300, 256<<10, round*50); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	if why := tr.Disks()[0].Stats().Degraded; why != "" {
		t.Fatal(why)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	same(t, "replayed logs vs disk", chainImage(t, spec), diskImage(t, spec.Path))
}

// jitter sleeps up to 100 µs at random: enough for two writes in flight to
// pass each other if nothing orders them.
func jitter() {
	if n := rand.IntN(4); n > 0 {
		time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
	}
}
