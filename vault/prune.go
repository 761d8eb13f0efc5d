package vault

import (
	"encoding/json"
	"fmt"
	"time"
)

// PruneJobs deletes the finished jobs that ended before cutoff and returns
// how many. Job IDs grow with time, so it walks from the oldest and stops
// at the first finished job it keeps: a run costs what it deletes, not the
// whole history. Running jobs are stepped over and kept.
func (t *Tx) PruneJobs(cutoff time.Time) (n int, err error) {
	defer t.catch(&err)
	b := t.tx.Bucket(bJobs)
	if b == nil {
		return 0, nil
	}
	var old [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var j Job
		if err := json.Unmarshal(v, &j); err != nil {
			return 0, t.corrupt(fmt.Sprintf("job %x: %v", k, err))
		}
		if j.State == JobRunning {
			continue
		}
		if !j.Ended.Before(cutoff) {
			break
		}
		old = append(old, append([]byte(nil), k...))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
