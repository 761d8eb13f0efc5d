package replica

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asr-project/asr/vault"
)

// DefaultPolicy is the policy `asr init` creates and enable-protection uses
// when none is named. It can be changed but never deleted.
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

// CheckPolicy validates a policy before it is stored; a bad value is
// ErrInvalid. Retention must be at least the frequency: there is no
// "keep forever", and 0 would keep only the newest point.
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
	if p.Retention == 0 {
		return fmt.Errorf("retention 0s: give how long recovery points are kept, at least the frequency %s (such as 24h); there is no keep-forever: %w",
			p.Frequency, ErrInvalid)
	}
	if p.Retention < p.Frequency {
		return fmt.Errorf("retention %s is shorter than the frequency %s: give at least %s, such as 24h: %w",
			p.Retention, p.Frequency, p.Frequency, ErrInvalid)
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

// CreatePolicy checks a new policy and stores it. A bad value is
// ErrInvalid, before the state file is touched; a policy of that name
// is ErrExists.
func (e *Engine) CreatePolicy(p vault.Policy) error {
	if err := CheckPolicy(p); err != nil {
		return err
	}
	return e.Vault.Update(func(tx *vault.Tx) error {
		if _, err := tx.Policy(p.Name); err == nil {
			return fmt.Errorf("policy %q exists; change it with asr policy set: %w", p.Name, ErrExists)
		} else if !errors.Is(err, vault.ErrNotFound) {
			return err
		}
		return tx.PutPolicy(p)
	})
}

// SetPolicy changes an existing policy in one transaction: change edits
// a copy of it, the result must pass CheckPolicy (ErrInvalid, nothing
// stored), and is stored and returned. An unknown policy is ErrNotFound.
// change must not rename the policy. VMs using it follow the new settings
// from their next cycle.
func (e *Engine) SetPolicy(name string, change func(*vault.Policy)) (vault.Policy, error) {
	var p vault.Policy
	err := e.Vault.Update(func(tx *vault.Tx) (err error) {
		if p, err = tx.Policy(name); err != nil {
			return err
		}
		change(&p)
		if p.Name != name {
			return fmt.Errorf("policy %q can't be renamed to %q: %w", name, p.Name, ErrInvalid)
		}
		if err := CheckPolicy(p); err != nil {
			return fmt.Errorf("policy %s: %w", name, err)
		}
		return tx.PutPolicy(p)
	})
	return p, err
}

// DeletePolicy removes a policy that no protected VM uses; the check and
// the delete are one transaction, so no VM can take the policy between
// them. A policy in use is ErrInUse naming its VMs; the default policy is
// ErrInvalid whether used or not (enable-protection falls back to it); an
// unknown one is ErrNotFound. Nothing is changed when it is refused.
func (e *Engine) DeletePolicy(name string) error {
	if name == DefaultPolicy {
		return fmt.Errorf("policy %q can't be deleted: enable-protection uses it when no --policy is given; change it with asr policy set %s: %w",
			name, name, ErrInvalid)
	}
	return e.Vault.Update(func(tx *vault.Tx) error {
		if _, err := tx.Policy(name); err != nil {
			return err
		}
		items, err := tx.Items()
		if err != nil {
			return err
		}
		var users []string
		for _, it := range items {
			if it.Policy == name {
				users = append(users, it.VM)
			}
		}
		if len(users) > 0 {
			return fmt.Errorf("policy %q is used by protected VMs %s; disable their protection first, or change the policy with asr policy set: %w",
				name, strings.Join(users, ", "), ErrInUse)
		}
		return tx.DeletePolicy(name)
	})
}
