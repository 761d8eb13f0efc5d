package vault

import (
	"path/filepath"
	"testing"
	"time"
)

// Finished jobs that ended before the cutoff go, oldest first, up to the
// first finished job kept; a Running job is stepped over and kept.
func TestPruneJobs(t *testing.T) {
	v, err := Init(filepath.Join(t.TempDir(), "site.db"), "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	jobs := []Job{
		{Kind: "replicate", VM: "a", State: JobSucceeded, Ended: day},
		{Kind: "replicate", VM: "a", State: JobFailed, Ended: day.Add(time.Hour)},
		{Kind: "resync", VM: "a", State: JobRunning},
		{Kind: "replicate", VM: "b", State: JobSucceeded, Ended: day.Add(2 * time.Hour)},
		{Kind: "replicate", VM: "b", State: JobSucceeded, Ended: day.AddDate(0, 0, 9)},
	}
	err = v.Update(func(tx *Tx) error {
		for i := range jobs {
			if err := tx.PutJob(&jobs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := v.Update(func(tx *Tx) (err error) { n, err = tx.PruneJobs(day.AddDate(0, 0, 7)); return }); err != nil {
		t.Fatal(err)
	}
	var left []Job
	v.View(func(tx *Tx) (err error) { left, err = tx.Jobs(); return })
	if n != 3 || len(left) != 2 || left[0].ID != jobs[2].ID || left[1].ID != jobs[4].ID {
		t.Fatalf("pruned %d, left %+v", n, left)
	}
}
