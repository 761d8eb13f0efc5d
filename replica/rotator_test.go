package replica

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rotations signals each rotation a rotator makes.
type rotations struct {
	testEvents
	c chan string
}

func (r rotations) Event(vm, msg string) {
	if strings.HasPrefix(msg, "logs rotated for point") {
		r.c <- msg
	}
}

// A cycle that outlasts the copy frequency must not push the next point
// back: its logs are rotated on time, while the cycle applies, and the
// point that follows keeps that time and holds exactly the writes made
// before it.
func TestLongCycleDoesNotDelayTheNextRotation(t *testing.T) {
	pol := NewPolicy("fast")
	pol.Frequency = time.Minute
	f := newFixture(t, pol)
	var clock atomic.Int64
	clock.Store(f.now.UnixNano())
	f.e.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	ev := rotations{testEvents{t}, make(chan string, 4)}
	f.e.Events = ev
	defer func(old time.Duration) { rotatePoll = old }(rotatePoll)
	rotatePoll = time.Millisecond
	f.protect(t, "fast")
	f.write(t, 0, 1<<20, 0x11)

	start := time.Unix(0, clock.Load()).Add(time.Minute)
	clock.Store(start.UnixNano())
	var mid []byte // the disk when the rotation during the cycle sealed it
	defer func(old func(string)) { crashpoint = old }(crashpoint)
	crashpoint = func(step string) {
		if step != "applying" || mid != nil {
			return
		}
		f.write(t, 2<<20, 4096, 0x22)
		mid = readDisk(t, f.disk)
		clock.Add(int64(61 * time.Second)) // the cycle runs past its frequency
		select {
		case <-ev.c:
		case <-time.After(10 * time.Second):
			t.Fatal("no rotation while the cycle applied")
		}
		f.write(t, 4<<20, 4096, 0x33) // after the rotation: not in its point
	}
	res, err := f.e.Replicate(context.Background(), []string{"web"})
	if err != nil {
		t.Fatal(err)
	}
	crashpoint = func(string) {}
	_, pts := f.item(t)
	if len(pts) != 3 {
		t.Fatalf("%d points after one long cycle, want 3 (protect, the cycle, the rotation during it)", len(pts))
	}
	if got, want := pts[2].Time, start.Add(61*time.Second).UTC(); !got.Equal(want) {
		t.Fatalf("the rotated point's time is %s, want the rotation's %s", got, want)
	}
	if pts[1].Bytes != 1<<20 || pts[2].Bytes != 4096 {
		t.Fatalf("points hold %d and %d bytes, want each its own: %d and 4096", pts[1].Bytes, pts[2].Bytes, 1<<20)
	}
	if res[0].Point != pts[2].ID {
		t.Fatalf("replicate reported point %s, want the newest %s", res[0].Point, pts[2].ID)
	}
	tg, err := f.e.OpenTarget(context.Background(), f.target)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	it, _ := f.item(t)
	got := make([]byte, len(mid))
	if err := tg.ReadAt(context.Background(), it.Disks[0].Replica, pts[2].ID, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, mid) {
		t.Fatal("the rotated point differs from the disk at its rotation")
	}
	// The write after the rotation ships with the next run.
	clock.Add(int64(2 * time.Minute))
	if _, err := f.e.Replicate(context.Background(), []string{"web"}); err != nil {
		t.Fatal(err)
	}
	f.exported(t)
}
