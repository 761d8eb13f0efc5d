package vault

import "testing"

func TestLastJobsNewestFinishedOfKind(t *testing.T) {
	v := newVault(t)
	jobs := []Job{
		{Kind: "replicate", VM: "web", State: JobSucceeded, Bytes: 1},
		{Kind: "replicate", VM: "db", State: JobFailed, Bytes: 2},
		{Kind: "replicate", VM: "web", State: JobSucceeded, Bytes: 3},
		{Kind: "resync", VM: "web", State: JobSucceeded, Bytes: 4},
		{Kind: "replicate", VM: "web", State: JobInterrupted, Bytes: 5},
		{Kind: "replicate", VM: "web", State: JobRunning, Bytes: 6},
		{Kind: "replicate", VM: "other", State: JobSucceeded, Bytes: 7},
	}
	err := v.Update(func(tx *Tx) error {
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
	var got map[string]Job
	if err := v.View(func(tx *Tx) (err error) { got, err = tx.LastJobs("replicate", []string{"web", "db", "new"}); return }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["web"].Bytes != 3 || got["db"].Bytes != 2 {
		t.Fatalf("LastJobs = %+v, want web's job of 3 bytes and db's of 2", got)
	}
}
