package vault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// LastJobs returns, per VM named, the newest finished (Succeeded or
// Failed) job of the given kind; a VM with none is not in the map. Jobs
// are read newest first and the scan stops once every VM has one, so the
// usual cost is a few records; a VM that never finished such a job makes
// it read every job on record (cheap: records of another kind are skipped
// without being decoded).
func (t *Tx) LastJobs(kind string, vms []string) (out map[string]Job, err error) {
	defer t.catch(&err)
	out = make(map[string]Job, len(vms))
	want := make(map[string]bool, len(vms))
	for _, vm := range vms {
		want[vm] = true
	}
	b := t.tx.Bucket(bJobs)
	if b == nil || len(want) == 0 {
		return out, nil
	}
	mark := []byte(`"kind":` + strconv.Quote(kind))
	c := b.Cursor()
	for k, data := c.Last(); k != nil && len(out) < len(want); k, data = c.Prev() {
		if !bytes.Contains(data, mark) {
			continue
		}
		var j Job
		if err := json.Unmarshal(data, &j); err != nil {
			return nil, t.corrupt(fmt.Sprintf("job record %x: %v", k, err))
		}
		if _, seen := out[j.VM]; !seen && want[j.VM] && j.Kind == kind &&
			(j.State == JobSucceeded || j.State == JobFailed) {
			out[j.VM] = j
		}
	}
	return out, nil
}
