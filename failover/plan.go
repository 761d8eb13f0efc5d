package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/hook"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// KindFailback is a plan run that fails its VMs back, last group first.
const KindFailback = "failback"

// DefaultPlanTimeout bounds a plan's pre and post commands when the plan
// gives no timeout.
const DefaultPlanTimeout = 5 * time.Minute

// VMs are the per-VM commands a plan runs; *Runner is the real one, unit
// tests give fakes.
type VMs interface {
	Test(ctx context.Context, vm, point, dir string) (Result, error)
	Planned(ctx context.Context, vm, dir string) (Result, error)
	Unplanned(ctx context.Context, vm, point, dir string, shutdownSource bool) (Result, error)
	Failback(ctx context.Context, vm, alternate string) (FailbackResult, error)
}

var _ VMs = (*Runner)(nil)

// Plans keeps a site's recovery plans and runs them.
type Plans struct {
	Vault      *vault.Vault
	OpenTarget func(ctx context.Context, url string) (target.Target, error)
	VMs        VMs
	// Hook runs an operator command (nil: hook.Run); Step, when set, hears
	// of every step done, one call at a time.
	Hook func(ctx context.Context, command string, timeout time.Duration) (string, error)
	Step func(PlanStep)
}

// PlanSpec is a plan as an operator gives it: groups of VMs, and pre and
// post commands given once (every group's) or once per group, in order.
type PlanSpec struct {
	Name      string
	Groups    [][]string
	Pre, Post []string
	Timeout   time.Duration
}

// NewPlan checks a spec and makes the plan it describes. It reads nothing:
// Create checks the VMs against the site.
func NewPlan(s PlanSpec) (vault.Plan, error) {
	p := vault.Plan{Name: s.Name, Timeout: s.Timeout}
	if err := replica.CheckName("plan", s.Name); err != nil {
		return p, err
	}
	if len(s.Groups) == 0 {
		return p, fmt.Errorf("plan %s has no group: give --group VM[,VM...] once per group: %w", s.Name, replica.ErrInvalid)
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultPlanTimeout
	}
	pre, err := perGroup("--pre", s.Pre, len(s.Groups))
	if err != nil {
		return p, err
	}
	post, err := perGroup("--post", s.Post, len(s.Groups))
	if err != nil {
		return p, err
	}
	seen := map[string]int{}
	for i, vms := range s.Groups {
		if len(vms) == 0 {
			return p, fmt.Errorf("group %d of plan %s is empty: %w", i+1, s.Name, replica.ErrInvalid)
		}
		for _, vm := range vms {
			if err := replica.CheckName("VM", vm); err != nil {
				return p, fmt.Errorf("group %d: %w", i+1, err)
			}
			if g, ok := seen[vm]; ok {
				return p, fmt.Errorf("VM %s is in group %d and group %d: a VM fails over once, in one group: %w", vm, g, i+1, replica.ErrInvalid)
			}
			seen[vm] = i + 1
		}
		p.Groups = append(p.Groups, vault.PlanGroup{VMs: slices.Clone(vms), Pre: pre[i], Post: post[i]})
	}
	return p, nil
}

// perGroup spreads commands over n groups: none, one for every group, or
// exactly one per group.
func perGroup(flag string, cmds []string, n int) ([]string, error) {
	out := make([]string, n)
	switch len(cmds) {
	case 0:
	case 1:
		for i := range out {
			out[i] = cmds[0]
		}
	case n:
		copy(out, cmds)
	default:
		return nil, fmt.Errorf("%s given %d times for %d groups: give it once (every group's) or once per group, in group order: %w", flag, len(cmds), n, replica.ErrInvalid)
	}
	return out, nil
}

// Create records a new plan: every VM must be protected at this site. The
// plan is copied to the target of each of its VMs first, then recorded
// here, so a failure leaves no plan this site knows of.
func (p *Plans) Create(ctx context.Context, s PlanSpec) (vault.Plan, error) {
	pl, err := NewPlan(s)
	if err != nil {
		return pl, err
	}
	lock, err := p.Vault.LockVM(planLock(pl.Name))
	if err != nil {
		return pl, err
	}
	defer lock.Unlock()
	var site vault.Site
	err = p.Vault.View(func(tx *vault.Tx) (err error) {
		if site, err = tx.Site(); err != nil {
			return err
		}
		if _, err := tx.Plan(pl.Name); err == nil {
			return fmt.Errorf("recovery plan %s: %w; delete it first (asr plan delete %s)", pl.Name, vault.ErrExists, pl.Name)
		}
		for _, g := range pl.Groups {
			for _, vm := range g.VMs {
				it, err := tx.Item(vm)
				if err != nil {
					return err
				}
				if !slices.Contains(pl.Targets, it.Target) {
					pl.Targets = append(pl.Targets, it.Target)
				}
			}
		}
		return nil
	})
	if err != nil {
		return pl, err
	}
	pl.Created = time.Now().UTC()
	cp := catalogPlan(pl, site.Name)
	for _, url := range pl.Targets {
		if err := p.onTarget(ctx, url, func(t target.Target) error { return catalog.PutPlan(ctx, t, cp) }); err != nil {
			return pl, err
		}
	}
	return pl, p.Vault.Update(func(tx *vault.Tx) error {
		if _, err := tx.Plan(pl.Name); err == nil {
			return fmt.Errorf("recovery plan %s: %w", pl.Name, vault.ErrExists)
		}
		return tx.PutPlan(pl)
	})
}

// Delete removes a plan from its targets, then from this site.
func (p *Plans) Delete(ctx context.Context, name string) (vault.Plan, error) {
	var pl vault.Plan
	if err := replica.CheckName("plan", name); err != nil {
		return pl, err
	}
	lock, err := p.Vault.LockVM(planLock(name))
	if err != nil {
		return pl, err
	}
	defer lock.Unlock()
	if err := p.Vault.View(func(tx *vault.Tx) (err error) { pl, err = tx.Plan(name); return }); err != nil {
		return pl, err
	}
	for _, url := range pl.Targets {
		if err := p.onTarget(ctx, url, func(t target.Target) error { return catalog.DeletePlan(ctx, t, name) }); err != nil {
			return pl, err
		}
	}
	return pl, p.Vault.Update(func(tx *vault.Tx) error { return tx.DeletePlan(name) })
}

func (p *Plans) onTarget(ctx context.Context, url string, fn func(target.Target) error) error {
	t, err := p.OpenTarget(ctx, url)
	if err != nil {
		return fmt.Errorf("open target %s: %w", url, errors.Join(replica.ErrTarget, err))
	}
	defer t.Close()
	if err := fn(t); err != nil {
		return fmt.Errorf("recovery plan on %s: %w", url, err)
	}
	return nil
}

// planLock names the lock a plan's create, delete and runs hold. VM names
// can't hold ':', so it never meets a VM's lock.
func planLock(name string) string { return "plan:" + name }

func catalogPlan(pl vault.Plan, site string) catalog.Plan {
	cp := catalog.Plan{Name: pl.Name, Timeout: pl.Timeout, Site: site, Time: pl.Created}
	for _, g := range pl.Groups {
		cp.Groups = append(cp.Groups, catalog.PlanGroup{VMs: slices.Clone(g.VMs), Pre: g.Pre, Post: g.Post})
	}
	return cp
}

// importPlans makes a recovery site's plans those its target holds: a
// plan's definition follows the target, and its run here stays. A plan
// gone from the target goes here too, unless a run of it is unfinished.
func importPlans(tx *vault.Tx, plans []catalog.Plan, url string) ([]string, error) {
	var names []string
	for _, cp := range plans {
		pl := vault.Plan{Name: cp.Name, Timeout: cp.Timeout, Targets: []string{url}, Created: cp.Time}
		if old, err := tx.Plan(cp.Name); err == nil {
			pl.Run = old.Run
		}
		for _, g := range cp.Groups {
			pl.Groups = append(pl.Groups, vault.PlanGroup{VMs: g.VMs, Pre: g.Pre, Post: g.Post})
		}
		if err := tx.PutPlan(pl); err != nil {
			return nil, err
		}
		names = append(names, pl.Name)
	}
	local, err := tx.Plans()
	if err != nil {
		return nil, err
	}
	for _, pl := range local {
		gone := !slices.Contains(names, pl.Name) && slices.Equal(pl.Targets, []string{url})
		if gone && (pl.Run == nil || pl.Run.Finished) {
			if err := tx.DeletePlan(pl.Name); err != nil {
				return nil, err
			}
		}
	}
	return names, nil
}

// PlanOrder is the order a run of kind takes the plan's groups in, as
// indexes: the plan's order, reversed for a failback.
func PlanOrder(pl vault.Plan, kind string) []int {
	out := make([]int, len(pl.Groups))
	for i := range out {
		out[i] = i
		if kind == KindFailback {
			out[i] = len(out) - 1 - i
		}
	}
	return out
}

// NextGroup is the 1-based number of the group an unfinished run goes on
// with, or 0.
func NextGroup(pl vault.Plan) int {
	r := pl.Run
	if r == nil || r.Finished {
		return 0
	}
	if order := PlanOrder(pl, r.Kind); r.Next < len(order) {
		return order[r.Next] + 1
	}
	return 0
}

// RunCommand is the command that starts or resumes a run of kind.
func RunCommand(plan, kind string) string {
	if kind == KindFailback {
		return "asr plan failback " + plan
	}
	return "asr plan failover " + plan + " --" + kind
}

// expand fills a pre or post command's placeholders, each value one shell
// word (quoted as the command host driver quotes).
func expand(tmpl, plan string, group int, vm string) string {
	return strings.NewReplacer("{vm}", host.Quote(vm), "{group}", fmt.Sprint(group), "{plan}", host.Quote(plan)).Replace(tmpl)
}

func (p *Plans) hook(ctx context.Context, cmd string, timeout time.Duration) error {
	run := p.Hook
	if run == nil {
		run = hook.Run
	}
	_, err := run(ctx, cmd, timeout)
	return err
}

// RestorePlans brings back, into a rebuilt state file, the plans the
// site wrote to its targets, each with the targets that hold it: asr
// state rebuild's share of the plans.
func RestorePlans(ctx context.Context, v *vault.Vault, open func(context.Context, string) (target.Target, error), urls []string, site string) ([]string, error) {
	var names []string
	for _, url := range urls {
		t, err := open(ctx, url)
		if err != nil {
			return names, fmt.Errorf("open target %s: %w", url, errors.Join(replica.ErrTarget, err))
		}
		plans, err := catalog.Plans(ctx, t)
		t.Close()
		if err != nil {
			return names, fmt.Errorf("list recovery plans on %s: %w", url, err)
		}
		err = v.Update(func(tx *vault.Tx) error {
			for _, cp := range plans {
				if cp.Site != site {
					continue
				}
				pl, err := tx.Plan(cp.Name)
				if err != nil {
					pl = vault.Plan{Name: cp.Name, Timeout: cp.Timeout, Created: cp.Time}
					for _, g := range cp.Groups {
						pl.Groups = append(pl.Groups, vault.PlanGroup{VMs: g.VMs, Pre: g.Pre, Post: g.Post})
					}
					names = append(names, cp.Name)
				}
				pl.Targets = append(pl.Targets, url)
				if err := tx.PutPlan(pl); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return names, err
		}
	}
	return names, nil
}
