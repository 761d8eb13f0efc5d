package vault

import (
	"errors"
	"fmt"
)

// Policy returns a policy by name, or ErrNotFound.
func (t *Tx) Policy(name string) (p Policy, err error) {
	if err = t.get(bPolicies, name, &p); errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("policy %q: %w; see `asr policy list`", name, ErrNotFound)
	}
	return p, err
}

// PutPolicy stores a policy, replacing one of the same name.
func (t *Tx) PutPolicy(p Policy) error { return t.put(bPolicies, p.Name, p) }

// Policies lists the policies by name.
func (t *Tx) Policies() ([]Policy, error) { return list[Policy](t, bPolicies, "") }

// DeletePolicy removes a policy record; an unknown name is ErrNotFound. It
// does not look at the items: whether a policy may go is the caller's rule
// (replica.Engine.DeletePolicy), checked in the same transaction.
func (t *Tx) DeletePolicy(name string) (err error) {
	if _, err := t.Policy(name); err != nil {
		return err
	}
	defer t.catch(&err)
	return t.tx.Bucket(bPolicies).Delete([]byte(name))
}
