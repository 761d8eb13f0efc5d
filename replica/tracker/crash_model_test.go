package tracker

import (
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// crash stops a tracker as kill -9 would: it takes the content of every
// file beside the disk at one instant (the page cache survives a process,
// so that is what the next start finds) while no write is in flight, and
// refuses all I/O after. Goroutines still inside the tracker may touch the
// files afterwards, as a dead process could not: restore undoes that.
// The files are read in the order the tracker makes them durable
// (activity log first, disk last), so a write seen on the disk has its
// activity-log record in the copy.
func crash(t *testing.T, tr *Tracker) files {
	t.Helper()
	tr.mu.Lock()
	tr.closed = true
	snap := files{}
	for _, d := range tr.disks {
		paths, _ := filepath.Glob(filepath.Join(filepath.Dir(d.path), "*"))
		slices.SortFunc(paths, func(a, b string) int { return durableOrder(a) - durableOrder(b) })
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				snap[p] = data
			}
		}
	}
	tr.mu.Unlock()
	for _, d := range tr.disks {
		d.release()
	}
	return snap
}

func durableOrder(p string) int {
	switch {
	case strings.HasSuffix(p, ".asr-al"):
		return 0
	case strings.HasSuffix(p, ".asr-dirty"):
		return 1
	case strings.HasSuffix(p, ".hrl"):
		return 2
	}
	return 3
}

// files is the content of the files of a disk's directory.
type files map[string][]byte

// restore makes the directory hold exactly these files; the disk is
// written first, so the tracker's own files are younger, as they would be.
func (fs files) restore(t *testing.T, disk string) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(filepath.Dir(disk), "*"))
	for _, p := range paths {
		if _, ok := fs[p]; !ok {
			os.Remove(p)
		}
	}
	for _, p := range append([]string{disk}, slices.Sorted(maps.Keys(fs))...) {
		if err := os.WriteFile(p, fs[p], 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// rotating rotates tr every few milliseconds until stop is closed.
func rotating(tr *Tracker, r *rand.Rand, stop chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1+r.IntN(5)) * time.Millisecond):
				tr.Rotate()
			}
		}
	}()
	return &wg
}

func TestKillRecoversAnExactChain(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 2))
	for trial := range 20 {
		spec := modelDisk(t)
		l := &load{model: make([]byte, modelSize)}
		for round := range 3 {
			tr, err := Start([]DiskSpec{spec}, modelOpt)
			if err != nil {
				t.Fatalf("trial %d round %d: start: %v", trial, round, err)
			}
			stop := make(chan struct{})
			rot := rotating(tr, rand.New(rand.NewPCG(r.Uint64(), 0)), stop)
			done := make(chan struct{})
			var loadErr error
			lr := rand.New(rand.NewPCG(r.Uint64(), 1))
			go func() {
				loadErr = l.run(tr.Disks()[0], lr, 8, 1000, modelSize, 40)
				close(done)
			}()
			time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
			close(stop)
			rot.Wait()
			l.crashed.Store(true)
			snap := crash(t, tr)
			<-done
			snap.restore(t, spec.Path)
			if loadErr != nil {
				t.Fatal(loadErr)
			}
		}
		// The last round's leftovers are recovered without a tracker, as
		// asr replicate does.
		if _, err := Recover(spec); err != nil {
			t.Fatalf("trial %d: recover: %v", trial, err)
		}
		if _, err := os.Stat(dirtyPath(spec.Path)); err == nil {
			t.Fatalf("trial %d: a kill degraded the disk", trial)
		}
		disk := diskImage(t, spec.Path)
		same(t, "disk vs model", disk, l.model)
		same(t, "replayed logs vs disk", chainImage(t, spec), disk)
		if err := CheckUntracked(spec.Path, false); err != nil {
			t.Fatalf("trial %d: recovery left the disk unaccounted for: %v", trial, err)
		}
	}
}

// shadows models a host crash: each file's content as of its last fsync
// (plus whatever later writes the copy happened to catch, which the page
// cache may also have kept). Restoring them loses every write not synced.
type shadows struct {
	mu     sync.Mutex
	files  files
	frozen bool // the host is down: nothing more reaches the disk
}

func (s *shadows) synced(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	s.mu.Lock()
	if !s.frozen {
		s.files[path] = data
	}
	s.mu.Unlock()
}

func TestHostCrashRecoversAnExactChain(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 3))
	for trial := range 8 {
		spec := modelDisk(t)
		sh := &shadows{files: files{}}
		sh.synced(spec.Path)
		opt := modelOpt
		opt.synced = sh.synced
		tr, err := Start([]DiskSpec{spec}, opt)
		if err != nil {
			t.Fatal(err)
		}
		// Phase one ends with a flush: all of it must survive.
		l := &load{model: make([]byte, modelSize)}
		if err := l.run(tr.Disks()[0], r, 8, 60, modelSize/2, 20); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Rotate(); err != nil {
			t.Fatal(err)
		}
		if err := l.run(tr.Disks()[0], r, 8, 60, modelSize/2, 20); err != nil {
			t.Fatal(err)
		}
		if err := tr.Disks()[0].Flush(); err != nil {
			t.Fatal(err)
		}
		flushed := append([]byte(nil), l.model...)
		// Phase two writes the other half and is cut off by the crash.
		stop := make(chan struct{})
		rot := rotating(tr, rand.New(rand.NewPCG(r.Uint64(), 0)), stop)
		done := make(chan struct{})
		var loadErr error
		l2 := &load{base: modelSize / 2}
		lr := rand.New(rand.NewPCG(r.Uint64(), 1))
		go func() {
			loadErr = l2.run(tr.Disks()[0], lr, 8, 200, modelSize/2, 20)
			close(done)
		}()
		time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
		close(stop)
		rot.Wait()
		l2.crashed.Store(true)
		sh.mu.Lock()
		sh.frozen = true
		sh.mu.Unlock()
		crash(t, tr)
		<-done
		if loadErr != nil {
			t.Fatal(loadErr)
		}
		sh.files.restore(t, spec.Path)

		tr, err = Start([]DiskSpec{spec}, modelOpt)
		if err != nil {
			t.Fatalf("trial %d: start after the crash: %v", trial, err)
		}
		if why := tr.Disks()[0].Stats().Degraded; why != "" {
			t.Fatalf("trial %d: a host crash degraded the disk: %s", trial, why)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		disk := diskImage(t, spec.Path)
		same(t, "flushed half of the disk vs model", disk[:modelSize/2], flushed[:modelSize/2])
		same(t, "replayed logs vs disk", chainImage(t, spec), disk)
	}
}
