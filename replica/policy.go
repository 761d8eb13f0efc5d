package replica

import (
	"fmt"
	"time"

	"github.com/asr-project/asr/vault"
)

// DefaultPolicy is the policy `asr init` creates and enable-protection uses
// when none is named.
const DefaultPolicy = "default"

// Frequencies are the copy frequencies Azure Site Recovery offers for
// Hyper-V; other values are refused.
var Frequencies = []time.Duration{30 * time.Second, 5 * time.Minute, 15 * time.Minute}

// NewPolicy returns a policy with the defaults: 5 minute copies, 24 hours
// of points, app-consistent points every hour when hooks are set, resync
// outside office hours.
func NewPolicy(name string) vault.Policy {
	return vault.Policy{Name: name, Frequency: 5 * time.Minute, Retention: 24 * time.Hour,
		AppConsistentEvery: time.Hour, ResyncWindow: "18:30-06:00"}
}

// CheckPolicy validates a policy before it is stored.
func CheckPolicy(p vault.Policy) error {
	if !diskName.MatchString(p.Name) {
		return fmt.Errorf("policy name %q: use letters, digits, '_' or '-': %w", p.Name, ErrInvalid)
	}
	ok := false
	for _, f := range Frequencies {
		ok = ok || p.Frequency == f
	}
	if !ok {
		return fmt.Errorf("frequency %s: use 30s, 5m or 15m: %w", p.Frequency, ErrInvalid)
	}
	if p.Retention < 0 || p.AppConsistentEvery < 0 {
		return fmt.Errorf("retention and app-consistent frequency can't be negative: %w", ErrInvalid)
	}
	if p.Retention > 0 && p.Retention < p.Frequency {
		return fmt.Errorf("retention %s is shorter than the frequency %s: %w", p.Retention, p.Frequency, ErrInvalid)
	}
	if p.BandwidthWork < 0 || p.BandwidthOther < 0 {
		return fmt.Errorf("bandwidth limits can't be negative; give MiB/s, or 0 for no limit: %w", ErrInvalid)
	}
	if _, err := parseWindow(p.ResyncWindow); err != nil {
		return err
	}
	if (p.FreezeCommand == "") != (p.ThawCommand == "") {
		return fmt.Errorf("give both a freeze and a thaw command, or neither: %w", ErrInvalid)
	}
	return nil
}
