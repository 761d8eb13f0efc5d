package targettest

import (
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

// history is a disk with snapshots and the expected content of each.
type history struct {
	disk  string
	live  []byte
	snaps []string
	want  map[string][]byte
	rng   *mrand.Rand
}

func newHistory(t *testing.T, e *env, seed uint64) *history {
	h := &history{disk: e.name("d"), live: make([]byte, diskSize), want: map[string][]byte{},
		rng: mrand.New(mrand.NewPCG(seed, seed+1))}
	mustCreate(t, e, h.disk, diskSize)
	return h
}

// writes makes a round of writes of many shapes: sub-page offsets inside
// larger blocks, whole blocks, spans over block and MiB edges, and random
// pages, so that copy-on-write backends see partial and repeated blocks.
func (h *history) writes(t *testing.T, e *env, round int) {
	t.Helper()
	r := int64(round)
	write(t, e, h.disk, h.live, h.rng, 64*1024+r*target.PageSize, target.PageSize)
	write(t, e, h.disk, h.live, h.rng, r*128*1024, 64*1024)
	write(t, e, h.disk, h.live, h.rng, target.SizeUnit-8192+r*4096, 3*64*1024)
	for range 4 {
		off := h.rng.Int64N(diskSize/target.PageSize-16) * target.PageSize
		write(t, e, h.disk, h.live, h.rng, off, int64(1+h.rng.IntN(16))*target.PageSize)
	}
}

func (h *history) snapshot(t *testing.T, e *env, name string) {
	t.Helper()
	if err := e.Snapshot(e.ctx, h.disk, name); err != nil {
		t.Fatalf("Snapshot(%s, %s): %v", h.disk, name, err)
	}
	h.snaps = append(h.snaps, name)
	h.want[name] = slices.Clone(h.live)
}

func (h *history) deleteSnapshot(t *testing.T, e *env, name string) {
	t.Helper()
	if err := e.DeleteSnapshot(e.ctx, h.disk, name); err != nil {
		t.Fatalf("DeleteSnapshot(%s, %s): %v", h.disk, name, err)
	}
	h.snaps = slices.DeleteFunc(h.snaps, func(s string) bool { return s == name })
	delete(h.want, name)
}

// check reads the disk and every snapshot back byte for byte.
func (h *history) check(t *testing.T, e *env) {
	t.Helper()
	checkEqual(t, e, h.disk, "", h.live)
	checkRanges(t, e, h.disk, "", h.live)
	for _, s := range h.snaps {
		checkEqual(t, e, h.disk, s, h.want[s])
		checkRanges(t, e, h.disk, s, h.want[s])
	}
	got, err := e.Snapshots(e.ctx, h.disk)
	if err != nil {
		t.Fatalf("Snapshots(%s): %v", h.disk, err)
	}
	checkList(t, "Snapshots", got, h.snaps)
}

// Names are not in creation order, so a listing sorted by name fails.
var snapNames = []string{"c", "a", "d", "b", "e"}

func testSnapshots(t *testing.T, e *env) {
	h := newHistory(t, e, 11)
	h.writes(t, e, 0)
	for i, n := range snapNames[:4] {
		h.snapshot(t, e, e.name(n))
		h.writes(t, e, i+1)
		if i == 1 { // two snapshots with no write between them
			h.snapshot(t, e, e.name(snapNames[4]))
		}
	}
	// One write over the whole disk leaves no block as it was.
	write(t, e, h.disk, h.live, h.rng, 0, diskSize)
	h.check(t, e)
}

func testSnapshotIdempotent(t *testing.T, e *env) {
	h := newHistory(t, e, 12)
	h.writes(t, e, 0)
	s := e.name("s")
	h.snapshot(t, e, s)
	h.writes(t, e, 1)
	if err := e.Snapshot(e.ctx, h.disk, s); err != nil {
		t.Fatalf("Snapshot again with the same name: %v", err)
	}
	h.check(t, e) // still the first content, listed once
}

func testSnapshotMissing(t *testing.T, e *env) {
	h := newHistory(t, e, 13)
	missing := e.name("missing")
	wantErr(t, "Snapshot of a missing disk", e.Snapshot(e.ctx, missing, e.name("s")), target.ErrNotFound)
	_, err := e.Snapshots(e.ctx, missing)
	wantErr(t, "Snapshots of a missing disk", err, target.ErrNotFound)
	if err := e.DeleteSnapshot(e.ctx, h.disk, e.name("nosnap")); err != nil {
		t.Fatalf("DeleteSnapshot of a missing snapshot: %v", err)
	}
	s := e.name("s")
	h.snapshot(t, e, s)
	wantErr(t, "ReadAt of a snapshot past the end", e.ReadAt(e.ctx, h.disk, s, make([]byte, 1024), diskSize-512), target.ErrInvalid)
	h.check(t, e)
}

// testDeleteSnapshot deletes snapshot victim of four, then goes on writing
// and snapshotting, and deletes the rest from the middle out.
func testDeleteSnapshot(t *testing.T, e *env, victim int) {
	h := newHistory(t, e, 20+uint64(victim))
	for i, n := range snapNames[:4] {
		h.writes(t, e, i)
		h.snapshot(t, e, e.name(n))
	}
	h.writes(t, e, 4)
	h.deleteSnapshot(t, e, h.snaps[victim])
	h.check(t, e)
	h.writes(t, e, 5) // the newest may have changed: writes must still preserve
	h.check(t, e)
	h.snapshot(t, e, e.name(snapNames[4]))
	h.writes(t, e, 6)
	for len(h.snaps) > 0 {
		h.deleteSnapshot(t, e, h.snaps[len(h.snaps)/2])
		h.check(t, e)
	}
}

func testDeleteSnapshotAll(t *testing.T, e *env) {
	h := newHistory(t, e, 30)
	for i, n := range snapNames[:3] {
		h.writes(t, e, i)
		h.snapshot(t, e, e.name(n))
	}
	for _, i := range []int{2, 0, 0} { // newest, then oldest twice
		h.deleteSnapshot(t, e, h.snaps[i])
		h.writes(t, e, 3+i)
		h.check(t, e)
	}
}
