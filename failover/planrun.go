package failover

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

// PlanResult is what a run of a plan did in this call.
type PlanResult struct {
	Plan    string `json:"plan"`
	Kind    string `json:"kind"`
	Point   string `json:"point,omitempty"`
	Resumed bool   `json:"resumed"`
	// Abandoned names an unfinished run of another kind given up for
	// this one.
	Abandoned string     `json:"abandoned,omitempty"`
	Finished  bool       `json:"finished"`
	Steps     []PlanStep `json:"steps"`
}

// PlanStep is one step of a plan run done: a pre or post command (for
// one VM when it holds {vm}), or one VM's failover or failback.
type PlanStep struct {
	Group    int             `json:"group"`
	Step     string          `json:"step"` // pre, failover, failback, post
	VM       string          `json:"vm,omitempty"`
	Command  string          `json:"command,omitempty"`
	Result   *Result         `json:"result,omitempty"`
	Failback *FailbackResult `json:"failback,omitempty"`
	// Note says why nothing ran: done by the run that was interrupted.
	Note string `json:"note,omitempty"`
}

// Run runs a plan's failovers (kind test, planned or unplanned, at point
// latest or latest-app) or its failback, group by group: the group's pre
// command, its VMs in parallel, its post command. Progress is saved after
// every step, so a run that failed or was killed is resumed by the same
// call: what is done is not done again. A run of another kind is refused
// while one is unfinished, unless that one stopped on a failed step.
func (p *Plans) Run(ctx context.Context, name, kind, point, dir string) (PlanResult, error) {
	res := PlanResult{Plan: name, Kind: kind, Steps: []PlanStep{}}
	if err := replica.CheckName("plan", name); err != nil {
		return res, err
	}
	if !slices.Contains([]string{KindTest, KindPlanned, KindUnplanned, KindFailback}, kind) {
		return res, fmt.Errorf("plan run kind %q: %w", kind, replica.ErrInvalid)
	}
	if point != "" && point != "latest" && point != "latest-app" || point != "" && (kind == KindPlanned || kind == KindFailback) {
		return res, fmt.Errorf("--point %q: a plan's VMs fail over to latest or latest-app (test and unplanned only): %w", point, replica.ErrInvalid)
	}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return res, fmt.Errorf("recovery folder %s: %w", dir, errors.Join(replica.ErrLocal, err))
		}
		dir = abs // a rerun from another folder goes on in the same place
	}
	lock, err := p.Vault.LockVM(planLock(name))
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	x := &planRun{p: p, res: &res}
	if err := p.Vault.View(func(tx *vault.Tx) (err error) { x.pl, err = tx.Plan(name); return }); err != nil {
		return res, err
	}
	r := x.pl.Run
	if r != nil && !r.Finished && r.Kind != kind && r.Error != "" {
		// A run that stopped on a failed step may be given up for one of
		// another kind (a failback of what it failed over); one that was
		// killed mid-step must be finished first.
		res.Abandoned = fmt.Sprintf("the unfinished %s run that stopped at group %d (%s)", r.Kind, NextGroup(x.pl), r.Error)
		r = nil
	}
	if r != nil && !r.Finished {
		again := RunCommand(name, r.Kind)
		switch {
		case r.Kind != kind:
			return res, refuse("recovery plan %s has an unfinished %s run (at group %d, %s); run %s to finish it first", name, r.Kind, NextGroup(x.pl), r.Phase, again)
		case point != "" && point != r.Point, dir != "" && dir != r.Dir:
			return res, refuse("recovery plan %s has an unfinished %s run with --point %q --dir %q; run %s without --point and --dir to finish it", name, r.Kind, r.Point, r.Dir, again)
		}
		res.Resumed = true
	} else {
		if point == "" && (kind == KindTest || kind == KindUnplanned) {
			point = "latest"
		}
		r = &vault.PlanRun{Kind: kind, Point: point, Dir: dir, Started: time.Now().UTC(), Phase: vault.PlanPre}
		x.pl.Run = r
		if err := x.save(); err != nil {
			return res, err
		}
	}
	x.run, res.Point = r, r.Point
	order := PlanOrder(x.pl, kind)
	for r.Next < len(order) {
		if err := x.group(ctx, order[r.Next]); err != nil {
			r.Error = err.Error()
			return res, errors.Join(err, x.save())
		}
	}
	r.Finished, r.Ended, r.Error = true, time.Now().UTC(), ""
	res.Finished = true
	return res, x.save()
}

// planRun is one call's hold on a run. mu orders the saves and the steps
// reported by the goroutines of a group.
type planRun struct {
	p   *Plans
	pl  vault.Plan
	run *vault.PlanRun
	res *PlanResult
	mu  sync.Mutex
}

// save records the run in the plan's record, keeping the definition the
// state file has (a sync may have refreshed it).
func (x *planRun) save() error {
	return x.p.Vault.Update(func(tx *vault.Tx) error {
		pl, err := tx.Plan(x.pl.Name)
		if err != nil {
			return err
		}
		r := *x.pl.Run
		r.Done = slices.Clone(r.Done)
		pl.Run = &r
		return tx.PutPlan(pl)
	})
}

// group runs what is left of one group: pre, VMs, post, saving after each.
func (x *planRun) group(ctx context.Context, gi int) error {
	g, r := x.pl.Groups[gi], x.run
	if r.Phase == vault.PlanPre {
		if err := x.hooks(ctx, gi, g.Pre, "pre"); err != nil {
			return err
		}
		if err := x.advance(vault.PlanVMs, 0); err != nil {
			return err
		}
	}
	if r.Phase == vault.PlanVMs {
		if err := x.parallel(ctx, gi, g.VMs, x.vm); err != nil {
			return err
		}
		if err := x.advance(vault.PlanPost, 0); err != nil {
			return err
		}
	}
	if err := x.hooks(ctx, gi, g.Post, "post"); err != nil {
		return err
	}
	return x.advance(vault.PlanPre, 1)
}

// advance moves the run to a phase (and on by next groups), saved.
func (x *planRun) advance(phase string, next int) error {
	x.run.Phase, x.run.Done, x.run.Next = phase, nil, x.run.Next+next
	if err := x.save(); err != nil {
		return err
	}
	replica.Crashpoint("plan-step")
	return nil
}

// hooks runs a group's pre or post command: once per VM, in parallel,
// when it holds {vm}, else once.
func (x *planRun) hooks(ctx context.Context, gi int, tmpl, step string) error {
	if tmpl == "" {
		return nil
	}
	name, timeout := x.pl.Name, x.pl.Timeout
	if !strings.Contains(tmpl, "{vm}") {
		cmd := expand(tmpl, name, gi+1, "")
		if err := x.p.hook(ctx, cmd, timeout); err != nil {
			return x.stopped(gi, []error{fmt.Errorf("%s command: %w", step, err)})
		}
		x.report(PlanStep{Group: gi + 1, Step: step, Command: cmd})
		return nil
	}
	return x.parallel(ctx, gi, x.pl.Groups[gi].VMs, func(ctx context.Context, gi int, vm string) (PlanStep, error) {
		cmd := expand(tmpl, name, gi+1, vm)
		if err := x.p.hook(ctx, cmd, timeout); err != nil {
			return PlanStep{}, fmt.Errorf("%s command for VM %s: %w", step, vm, err)
		}
		return PlanStep{Group: gi + 1, Step: step, VM: vm, Command: cmd}, nil
	})
}

// parallel runs fn for each VM not done yet, one goroutine each, and
// records each success as it comes. All run to their end; the failures
// stop the plan together.
func (x *planRun) parallel(ctx context.Context, gi int, vms []string, fn func(context.Context, int, string) (PlanStep, error)) error {
	var todo []string
	for _, vm := range vms {
		if !slices.Contains(x.run.Done, vm) {
			todo = append(todo, vm)
		}
	}
	var wg sync.WaitGroup
	var errs []error
	for _, vm := range todo {
		wg.Go(func() {
			st, err := fn(ctx, gi, vm)
			x.mu.Lock()
			defer x.mu.Unlock()
			if err == nil {
				x.run.Done = append(x.run.Done, vm)
				if err = x.save(); err == nil {
					replica.Crashpoint("plan-step")
					x.report(st)
					return
				}
			}
			errs = append(errs, err)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return x.stopped(gi, errs)
	}
	return nil
}

func (x *planRun) report(st PlanStep) {
	x.res.Steps = append(x.res.Steps, st)
	if x.p.Step != nil {
		x.p.Step(st)
	}
}

// stopped is the error of a failed step: it names the plan, the group and
// each failure, and says how to resume. It wraps the failures, so the exit
// code is theirs.
func (x *planRun) stopped(gi int, errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	slices.Sort(msgs)
	return &stepError{
		msg: fmt.Sprintf("recovery plan %s stopped at group %d: %s; fix that and run %s again: it resumes at this step",
			x.pl.Name, gi+1, strings.Join(msgs, "; "), RunCommand(x.pl.Name, x.run.Kind)),
		errs: errs,
	}
}

type stepError struct {
	msg  string
	errs []error
}

func (e *stepError) Error() string   { return e.msg }
func (e *stepError) Unwrap() []error { return e.errs }

// vm runs one VM's failover or failback for the run. A VM this run has
// moved already (killed before the plan saved it) is done; an unplanned
// failover this run began goes on from its own point.
func (x *planRun) vm(ctx context.Context, gi int, vm string) (PlanStep, error) {
	r := x.run
	st := PlanStep{Group: gi + 1, Step: "failover", VM: vm}
	if r.Kind == KindFailback {
		st.Step = KindFailback
	}
	var it vault.Item
	err := x.p.Vault.View(func(tx *vault.Tx) (err error) { it, err = tx.Item(vm); return })
	if err != nil {
		return st, fmt.Errorf("%s of VM %s: %w", st.Step, vm, err)
	}
	ours := func(f *vault.Failover) bool { return f != nil && !f.Started.Before(r.Started) }
	point := r.Point
	switch {
	case r.Kind == KindTest && ours(it.Test) && it.Test.Step == stepDone,
		(r.Kind == KindPlanned || r.Kind == KindUnplanned) && ours(it.Failover) && it.Failover.Kind == r.Kind &&
			(it.State == vault.StateFailedOver || it.State == vault.StateCommitted),
		r.Kind == KindFailback && it.Failback != nil && !it.Failback.Started.Before(r.Started) &&
			(it.State == vault.StateFailedBack || it.State == vault.StateFailbackCommitted):
		st.Note = "done by the interrupted run"
		return st, nil
	case r.Kind == KindUnplanned && ours(it.Failover) && it.State == vault.StateFailoverInProgress:
		point = "" // this run's own: finish it at the point it chose
	}
	if r.Kind == KindFailback {
		fb, err := x.p.VMs.Failback(ctx, vm, "")
		if err != nil {
			return st, fmt.Errorf("failback of VM %s: %w", vm, err)
		}
		st.Failback = &fb
		return st, nil
	}
	var res Result
	switch r.Kind {
	case KindTest:
		res, err = x.p.VMs.Test(ctx, vm, point, r.Dir)
	case KindPlanned:
		res, err = x.p.VMs.Planned(ctx, vm, r.Dir)
	default:
		res, err = x.p.VMs.Unplanned(ctx, vm, point, r.Dir, false)
	}
	if err != nil {
		return st, fmt.Errorf("%s of VM %s: %w", st.Step, vm, err)
	}
	st.Result = &res
	return st, nil
}
