package vault

import (
	"errors"
	"fmt"
	"time"
)

// Plan is a recovery plan: groups of VMs that fail over in order, with
// operator commands around each group. Run is its latest run, kept here
// so a killed or failed run is resumed by the same command.
type Plan struct {
	Name   string      `json:"name"`
	Groups []PlanGroup `json:"groups"`
	// Timeout bounds each pre or post command.
	Timeout time.Duration `json:"timeout"`
	// Targets are the targets the plan was copied to (its VMs' targets),
	// kept so delete finds them after a VM has gone.
	Targets []string  `json:"targets"`
	Created time.Time `json:"created"`
	Run     *PlanRun  `json:"run,omitempty"`
}

// PlanGroup is one group of a plan: its VMs fail over in parallel, Pre
// runs before them and Post after them ("" for none). A command holding
// {vm} runs once per VM.
type PlanGroup struct {
	VMs  []string `json:"vms"`
	Pre  string   `json:"pre,omitempty"`
	Post string   `json:"post,omitempty"`
}

// Phases of a plan run within a group, in order.
const (
	PlanPre  = "pre"
	PlanVMs  = "vms"
	PlanPost = "post"
)

// PlanRun is a run of a plan and how far it got. Next indexes the run's
// group order (reversed for a failback); Phase is the next phase of that
// group; Done lists what of the phase is done (VMs failed over, or VMs
// whose {vm} command ran).
type PlanRun struct {
	Kind     string    `json:"kind"` // test, planned, unplanned or failback
	Point    string    `json:"point,omitempty"`
	Dir      string    `json:"dir,omitempty"`
	Started  time.Time `json:"started"`
	Next     int       `json:"next"`
	Phase    string    `json:"phase"`
	Done     []string  `json:"done,omitempty"`
	Finished bool      `json:"finished"`
	Ended    time.Time `json:"ended,omitzero"`
	// Error is why the run last stopped, for plan show.
	Error string `json:"error,omitempty"`
}

// Plan returns a plan by name, or ErrNotFound.
func (t *Tx) Plan(name string) (p Plan, err error) {
	if err = t.get(bPlans, name, &p); errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("recovery plan %q: %w; see `asr plan list`", name, ErrNotFound)
	}
	return p, err
}

// PutPlan stores a plan, replacing one of the same name.
func (t *Tx) PutPlan(p Plan) error { return t.put(bPlans, p.Name, p) }

// Plans lists the plans by name.
func (t *Tx) Plans() ([]Plan, error) { return list[Plan](t, bPlans, "") }

// DeletePlan removes a plan; an unknown name is ErrNotFound.
func (t *Tx) DeletePlan(name string) (err error) {
	if _, err := t.Plan(name); err != nil {
		return err
	}
	defer t.catch(&err)
	return t.tx.Bucket(bPlans).Delete([]byte(name))
}
