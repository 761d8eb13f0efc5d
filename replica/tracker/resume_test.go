package tracker

import (
	"errors"
	"os"
	"testing"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/hrl"
)

// setMarks says whether the resync set covers [off, off+n).
func setMarks(t *testing.T, disk string, off, n int64) bool {
	t.Helper()
	return covers(t, ReadResyncSet, disk, off, n)
}

// A degraded disk logs again after Resume, in a chain that starts at the
// ID Resume returns; the resync set holds what the dirty map and the
// dropped logs held, and nothing else; the dirty map and old logs are gone.
func TestResumeRestartsLogging(t *testing.T) {
	spec := modelDisk(t)
	tr, err := Start([]DiskSpec{spec}, modelOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	d := tr.Disks()[0]
	write(t, d, 0, 4096, 1) // logged, then its log is sealed
	if _, err := tr.Rotate(); err != nil {
		t.Fatal(err)
	}
	d.degrade("test", d.seq, nil)
	write(t, d, 1<<20, 4096, 2) // only in the dirty map
	base, err := tr.Resume()
	if err != nil {
		t.Fatal(err)
	}
	b := base["os"]
	if _, err := os.Stat(dirtyPath(spec.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dirty map still there: %v", err)
	}
	if !setMarks(t, spec.Path, 0, 4096) || !setMarks(t, spec.Path, 1<<20, 4096) || setMarks(t, spec.Path, 2<<20, 4096) {
		t.Fatal("resync set is not the dirty map plus the sealed log")
	}
	write(t, d, 3<<20, 4096, 3) // logged again
	w := tr.Written()["os"]
	if g := int64(3<<20) / granule; w[g/64]&(1<<(g%64)) == 0 {
		t.Fatal("Written misses the write after Resume")
	}
	if _, err := tr.Rotate(); err != nil {
		t.Fatal(err)
	}
	logs, _ := Logs(spec.Path)
	if len(logs) != 2 || logs[0].Seq != b.Seq+1 {
		t.Fatalf("logs after Resume: %v, want the sealed one numbered %d and the active one", logs, b.Seq+1)
	}
	l, err := hrl.Open(logs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := hrl.CheckChain([]*hrl.Log{l}, uuid.MustParse(b.ID)); err != nil {
		t.Fatalf("new log does not chain from the base: %v", err)
	}
	if len(l.Entries) != 1 || l.Entries[0].Off != 3<<20 {
		t.Fatalf("new log holds %v", l.Entries)
	}
}

// Offline, a log that can't be read marks the whole disk, and an
// existing set is merged, never replaced.
func TestResumeOfflineDamagedLog(t *testing.T) {
	spec := modelDisk(t)
	if err := MarkResyncSet(spec.Path, spec.Size, [][2]int64{{2 << 20, 2<<20 + 1}}); err != nil {
		t.Fatal(err)
	}
	b, err := ResumeOffline(spec)
	if err != nil {
		t.Fatal(err)
	}
	if setMarks(t, spec.Path, 0, spec.Size) || !setMarks(t, spec.Path, 2<<20, 1) {
		t.Fatal("a clean disk's set should hold only the earlier mark")
	}
	if os.WriteFile(LogPath(spec.Path, b.Seq+1), make([]byte, 64<<10), 0o600) != nil {
		t.Fatal("write")
	}
	spec.AppliedSeq = b.Seq
	if _, err := ResumeOffline(spec); err != nil {
		t.Fatal(err)
	}
	if !setMarks(t, spec.Path, 0, spec.Size) {
		t.Fatal("a damaged log did not mark the whole disk")
	}
	if logs, _ := Logs(spec.Path); len(logs) != 0 {
		t.Fatalf("logs left: %v", logs)
	}
}
