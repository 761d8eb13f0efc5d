package tracker

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/vhd"
)

func newDisks(t *testing.T, names ...string) []DiskSpec {
	t.Helper()
	dir := t.TempDir()
	var specs []DiskSpec
	for _, n := range names {
		p := filepath.Join(dir, n+".vhd")
		d, err := vhd.CreateFixed(p, 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		specs = append(specs, DiskSpec{Name: n, Path: p})
	}
	return specs
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// replay applies a disk's logs, as the replicate cycle would.
func replay(t *testing.T, spec DiskSpec, upTo uint64) []byte {
	t.Helper()
	files, _ := Logs(spec.Path)
	var logs []*hrl.Log
	for _, f := range files {
		if f.Seq > upTo {
			break
		}
		l, err := hrl.Open(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
	}
	if err := hrl.CheckChain(logs, uuid.Nil); err != nil {
		t.Fatal(err)
	}
	disk := make([]byte, 4<<20)
	for _, e := range hrl.Coalesce(logs) {
		data, _ := readFileAt(logs[e.Log].Path, e.FileOff, e.Len)
		copy(disk[e.Off:], data)
	}
	return disk
}

func TestRotateSealsAllDisksAtOneInstant(t *testing.T) {
	specs := newDisks(t, "os", "data")
	tr, err := Start(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	os, data := tr.Disks()[0], tr.Disks()[1]
	os.WriteAt(fill(4096, 1), 0)
	data.WriteAt(fill(8192, 2), 4096)
	sealed, err := tr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteAt(fill(4096, 3), 0) // after the point
	if sealed["os"].Seq != 1 || sealed["data"].Seq != 1 {
		t.Fatalf("sealed %+v, want seq 1 for both", sealed)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if got := replay(t, specs[0], 1); got[0] != 1 || got[4095] != 1 {
		t.Fatalf("point holds %x at 0, want the write before the rotation", got[0])
	}
	if got := replay(t, specs[1], 1); got[4096] != 2 || got[4096+8191] != 2 {
		t.Fatal("second disk's write missing from the point")
	}
	if got := replay(t, specs[0], 2); got[0] != 3 {
		t.Fatal("write after the rotation missing from the next log")
	}
}

func TestRestartContinuesTheChain(t *testing.T) {
	specs := newDisks(t, "os")
	for i := range 3 {
		tr, err := Start(specs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		tr.Disks()[0].WriteAt(fill(512, byte(i+1)), int64(i)*512)
		tr.Close()
	}
	logs, _ := Logs(specs[0].Path)
	if len(logs) != 3 || logs[2].Seq != 3 {
		t.Fatalf("logs %+v", logs)
	}
	got := replay(t, specs[0], 3) // checks the UUID chain too
	for i := range 3 {
		if got[i*512] != byte(i+1) {
			t.Fatalf("write %d lost across restarts", i)
		}
	}
}

func TestTrimKeepsDiskAndZeroesAreLogged(t *testing.T) {
	specs := newDisks(t, "os")
	tr, _ := Start(specs, Options{MaxLogBytes: 1 << 30})
	d := tr.Disks()[0]
	d.WriteAt(fill(1<<20, 9), 0)
	if err := d.Trim(0, 4096); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteZeroes(8192, 3<<20/2); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	d.ReadAt(p, 0)
	if p[0] != 9 {
		t.Fatal("trim changed the disk")
	}
	tr.Close()
	got := replay(t, specs[0], 1)
	if got[0] != 9 || got[8191] != 9 || got[8192] != 0 || got[(1<<20)-1] != 0 {
		t.Fatal("replayed log disagrees with the disk after trim and write-zeroes")
	}
}

func TestClosedTrackerRefusesWrites(t *testing.T) {
	tr, _ := Start(newDisks(t, "os"), Options{})
	d := tr.Disks()[0]
	tr.Close()
	if _, err := d.WriteAt(fill(512, 1), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v, want ErrClosed", err)
	}
}

func TestControlSocketRotates(t *testing.T) {
	specs := newDisks(t, "os")
	tr, _ := Start(specs, Options{})
	defer tr.Close()
	_, sock := Paths(t.TempDir(), "web")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go ServeControl(l, tr)
	tr.Disks()[0].WriteAt(fill(512, 5), 0)
	sealed, err := RequestRotate(context.Background(), sock)
	if err != nil || sealed["os"].Seq != 1 {
		t.Fatalf("rotate over the socket: %+v, %v", sealed, err)
	}
	info, err := hrl.Inspect(LogPath(specs[0].Path, 1))
	if err != nil || !info.Closed || info.UniqueID.String() != sealed["os"].ID {
		t.Fatalf("sealed log %+v, %v", info, err)
	}
}

func readFileAt(path string, off, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := make([]byte, n)
	_, err = f.ReadAt(p, off)
	return p, err
}

func TestUntrackedChangesAreCaught(t *testing.T) {
	spec := newDisks(t, "os")[0]
	if err := CheckUntracked(spec.Path, false); err != nil {
		t.Fatalf("no stamp yet: %v", err)
	}
	if err := Stamp(spec.Path); err != nil {
		t.Fatal(err)
	}
	if err := CheckUntracked(spec.Path, false); err != nil {
		t.Fatalf("unchanged disk: %v", err)
	}
	later := time.Now().Add(time.Minute)
	os.Chtimes(spec.Path, later, later)
	if err := CheckUntracked(spec.Path, false); !errors.Is(err, ErrUntracked) {
		t.Fatalf("changed disk: %v, want ErrUntracked", err)
	}
	if err := CheckUntracked(spec.Path, true); err != nil {
		t.Fatalf("a running tracker's writes move the time: %v", err)
	}
	// A tracker started now keeps the evidence past its own stamp.
	tr, err := Start([]DiskSpec{spec}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	for _, running := range []bool{false, true} {
		if err := CheckUntracked(spec.Path, running); !errors.Is(err, ErrUntracked) {
			t.Fatalf("after a tracker (running=%v): %v, want ErrUntracked", running, err)
		}
	}
	for _, p := range StateFiles(spec.Path) {
		os.Remove(p)
	}
	if err := CheckUntracked(spec.Path, false); err != nil {
		t.Fatalf("after removing the state files: %v", err)
	}
}
