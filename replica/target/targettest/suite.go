package targettest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

// diskSize is the size of most disks the suite makes.
const diskSize = 4 << 20

// Run runs the conformance suite against the targets open returns. open is
// called once per subtest; the suite closes each target it got.
func Run(t *testing.T, open func(t *testing.T) target.Target) {
	s := &suite{open: open, tag: newTag(t)}
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"CreateDisk", testCreateDisk},
		{"WritePagesRules", testWritePagesRules},
		{"WriteBatch", testWriteBatch},
		{"WriteBatchRules", testWriteBatchRules},
		{"WriteBatchSnapshot", testWriteBatchSnapshot},
		{"ReadAt", testReadAt},
		{"Ranges", testRanges},
		{"Snapshots", testSnapshots},
		{"SnapshotIdempotent", testSnapshotIdempotent},
		{"SnapshotMissing", testSnapshotMissing},
		{"DeleteSnapshotOldest", func(t *testing.T, e *env) { testDeleteSnapshot(t, e, 0) }},
		{"DeleteSnapshotMiddle", func(t *testing.T, e *env) { testDeleteSnapshot(t, e, 1) }},
		{"DeleteSnapshotNewest", func(t *testing.T, e *env) { testDeleteSnapshot(t, e, 3) }},
		{"DeleteSnapshotAll", testDeleteSnapshotAll},
		{"CopyFromSnapshot", testCopyFromSnapshot},
		{"CopyFromSnapshotErrors", testCopyFromSnapshotErrors},
		{"Resize", testResize},
		{"ResizeRules", testResizeRules},
		{"DeleteDisk", testDeleteDisk},
		{"Objects", testObjects},
		{"ObjectsList", testObjectsList},
		{"ConcurrentWrites", testConcurrentWrites},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := s.open(t)
			t.Cleanup(func() {
				if err := tg.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, &env{Target: tg, ctx: t.Context(), tag: s.tag + "-" + short(tc.name)})
		})
	}
}

type suite struct {
	open func(t *testing.T) target.Target
	tag  string
}

// env is one subtest's target and name space.
type env struct {
	target.Target
	ctx context.Context
	tag string
}

// name returns a disk, snapshot or object name unique to this subtest.
func (e *env) name(s string) string { return e.tag + "-" + s }

func newTag(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random tag: %v", err)
	}
	return "tt" + hex.EncodeToString(b[:])
}

// short turns a subtest name into a lower-case tag fragment.
func short(s string) string {
	var b []byte
	for _, c := range []byte(s) {
		switch {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		}
	}
	return string(b)
}

// mustCreate makes a disk and registers its deletion.
func mustCreate(t *testing.T, e *env, disk string, size int64) {
	t.Helper()
	if err := e.CreateDisk(e.ctx, disk, size); err != nil {
		t.Fatalf("CreateDisk(%s, %d): %v", disk, size, err)
	}
	t.Cleanup(func() { _ = e.DeleteDisk(context.Background(), disk) })
}

// write writes random pages at off into the disk and the model.
func write(t *testing.T, e *env, disk string, model []byte, rng *mrand.Rand, off, n int64) {
	t.Helper()
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	if err := e.WritePages(e.ctx, disk, off, p); err != nil {
		t.Fatalf("WritePages(%s, off %d, len %d): %v", disk, off, n, err)
	}
	copy(model[off:], p)
}

// readAll reads a disk or snapshot whole.
func readAll(t *testing.T, e *env, disk, snap string, size int64) []byte {
	t.Helper()
	p := bytes.Repeat([]byte{0xA5}, int(size)) // not zero: a no-op read must show
	if err := e.ReadAt(e.ctx, disk, snap, p, 0); err != nil {
		t.Fatalf("ReadAt(%s, snapshot %q): %v", disk, snap, err)
	}
	return p
}

// checkEqual compares a disk or snapshot with its model byte for byte.
func checkEqual(t *testing.T, e *env, disk, snap string, want []byte) {
	t.Helper()
	got := readAll(t, e, disk, snap, int64(len(want)))
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s snapshot %q: byte %d is %#x, want %#x", disk, snap, i, got[i], want[i])
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// checkRanges checks that ranges are sorted, disjoint, inside the disk, and
// that every non-zero byte of want lies inside one.
func checkRanges(t *testing.T, e *env, disk, snap string, want []byte) {
	t.Helper()
	rs, err := e.Ranges(e.ctx, disk, snap)
	if err != nil {
		t.Fatalf("Ranges(%s, %q): %v", disk, snap, err)
	}
	var end int64
	covered := make([]bool, len(want))
	for i, r := range rs {
		if r.Off < end || r.Len <= 0 || r.Off+r.Len > int64(len(want)) {
			t.Fatalf("Ranges(%s, %q)[%d] = %+v: not sorted, empty, overlapping or past %d", disk, snap, i, r, len(want))
		}
		end = r.Off + r.Len
		for j := r.Off; j < end; j++ {
			covered[j] = true
		}
	}
	for i, c := range want {
		if c != 0 && !covered[i] {
			t.Fatalf("Ranges(%s, %q) = %v: non-zero byte %d not covered", disk, snap, rs, i)
		}
	}
}

// wantErr fails unless err wraps sentinel.
func wantErr(t *testing.T, what string, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Errorf("%s: error %v, want %v", what, err, sentinel)
	}
}

// checkList compares a listing with want, order included.
func checkList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}
