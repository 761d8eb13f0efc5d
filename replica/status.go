package replica

import (
	"time"

	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/vault"
)

// Status is what `asr status` shows of one protected item.
type Status struct {
	vault.Item
	Frequency time.Duration `json:"frequency"`
	// RPO is the age of the last recovery point; RPOMissed says it is
	// older than the copy frequency allows (two cycles' grace).
	RPO          time.Duration `json:"rpo"`
	RPOMissed    bool          `json:"rpo_missed"`
	PendingBytes int64         `json:"pending_log_bytes"`
	NextDue      time.Time     `json:"next_due,omitzero"`
	Points       int           `json:"points"`
	// Copied is the share of the initial copy done, 0 to 1.
	Copied float64 `json:"copied"`
	// ResyncAt is when cron will run a pending resync (the policy's
	// window); ResyncDone the share of a running resync's compare done.
	ResyncAt   time.Time `json:"resync_at,omitzero"`
	ResyncDone float64   `json:"resync_done,omitempty"`
	// ResyncCompared and ResyncSent are a running resync's bytes so far.
	ResyncCompared int64 `json:"resync_compared,omitempty"`
	ResyncSent     int64 `json:"resync_sent,omitempty"`
}

// Statuses returns the status of the named VMs, or of all when none is
// named.
func (e *Engine) Statuses(vms []string) ([]Status, error) {
	var out []Status
	now := e.now()
	err := e.Vault.View(func(tx *vault.Tx) error {
		items, err := tx.ItemsNamed(vms)
		if err != nil {
			return err
		}
		for _, it := range items {
			s := Status{Item: it}
			p, err := tx.Policy(it.Policy)
			if err == nil {
				s.Frequency = p.Frequency
			}
			pts, err := tx.Points(it.VM)
			if err != nil {
				return err
			}
			s.Points = len(pts)
			if !it.LastPointAt.IsZero() {
				s.RPO = now.Sub(it.LastPointAt).Round(time.Second)
				s.NextDue = it.LastPointAt.Add(s.Frequency)
				s.RPOMissed = s.RPO > 2*s.Frequency
			}
			var done, total int64
			for _, d := range it.Disks {
				if m, err := tracker.ReadDirty(d.Path); err == nil && s.State != vault.StateResyncRequired {
					// The tracker stopped logging: say so before the next cycle records it.
					s.State, s.Health, s.HealthReason = vault.StateResyncRequired, vault.HealthWarning, m.Reason
				}
				s.PendingBytes += tracker.PendingBytes(d.Path)
				done += d.CopiedTo
				total += d.ReplicaSize
			}
			if total > 0 {
				s.Copied = float64(done) / float64(total)
			}
			if s.State == vault.StateResyncRequired || s.State == vault.StateResyncing {
				s.ResyncAt = resyncAt(p, now)
			}
			if rs := it.Resync; rs != nil {
				var all int64
				for _, d := range rs.Disks {
					s.ResyncCompared, s.ResyncSent, all = s.ResyncCompared+d.Compared, s.ResyncSent+d.Sent, all+d.Total
				}
				if all > 0 {
					s.ResyncDone = min(1, float64(s.ResyncCompared)/float64(all))
				}
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}
