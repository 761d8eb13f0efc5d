package failover

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/target"
	_ "github.com/asr-project/asr/replica/target/file"
	"github.com/asr-project/asr/vault"
)

// fakeVMs records the per-VM calls a plan makes, in order.
type fakeVMs struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeVMs) call(kind, vm string) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, kind+" "+vm)
	return Result{VM: vm, Kind: kind, State: vault.StateFailedOver}, nil
}

func (f *fakeVMs) Test(_ context.Context, vm, _, _ string) (Result, error) {
	return f.call(KindTest, vm)
}
func (f *fakeVMs) Planned(_ context.Context, vm, _ string) (Result, error) {
	return f.call(KindPlanned, vm)
}
func (f *fakeVMs) Unplanned(_ context.Context, vm, _, _ string, _ bool) (Result, error) {
	return f.call(KindUnplanned, vm)
}
func (f *fakeVMs) Failback(_ context.Context, vm, _ string) (FailbackResult, error) {
	_, err := f.call(KindFailback, vm)
	return FailbackResult{VM: vm}, err
}

func (f *fakeVMs) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

// fakeHooks records the commands run and fails those holding "fail" while
// broken is set.
type fakeHooks struct {
	mu     sync.Mutex
	ran    []string
	broken bool
}

var errHook = errors.New("hook failed")

func (h *fakeHooks) run(_ context.Context, cmd string, _ time.Duration) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.broken && strings.Contains(cmd, "fail") {
		return "", errHook
	}
	h.ran = append(h.ran, cmd)
	return "", nil
}

func (h *fakeHooks) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.ran
	h.ran = nil
	slices.Sort(out)
	return out
}

func newPlanSite(t *testing.T, vms ...string) (*Plans, *fakeVMs, *fakeHooks) {
	t.Helper()
	dir := t.TempDir()
	v, err := vault.Init(filepath.Join(dir, "site.db"), "primary", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.Join(dir, "target")
	err = v.Update(func(tx *vault.Tx) error {
		for _, vm := range vms {
			if err := tx.PutItem(vault.Item{VM: vm, Target: url, State: vault.StateProtected}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, h := &fakeVMs{}, &fakeHooks{}
	open := func(ctx context.Context, url string) (target.Target, error) {
		return target.Open(ctx, url, target.Config{})
	}
	return &Plans{Vault: v, OpenTarget: open, VMs: f, Hook: h.run}, f, h
}

func TestNewPlanSpreadsCommands(t *testing.T) {
	groups := [][]string{{"db"}, {"web", "app"}}
	p, err := NewPlan(PlanSpec{Name: "app", Groups: groups, Pre: []string{"pre"}, Post: []string{"p1", "p2"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Groups[0].Pre != "pre" || p.Groups[1].Pre != "pre" || p.Groups[0].Post != "p1" || p.Groups[1].Post != "p2" || p.Timeout != DefaultPlanTimeout {
		t.Fatalf("plan %+v", p)
	}
	for _, s := range []PlanSpec{
		{Name: "app", Groups: groups, Pre: []string{"a", "b", "c"}},
		{Name: "app", Groups: [][]string{{"db"}, {"web", "db"}}},
		{Name: "app", Groups: [][]string{{"db"}, {}}},
		{Name: "app"},
		{Name: "a/b", Groups: groups},
		{Name: "app", Groups: [][]string{{"bad name"}}},
	} {
		if _, err := NewPlan(s); !errors.Is(err, replica.ErrInvalid) {
			t.Errorf("NewPlan(%+v): %v, want ErrInvalid", s, err)
		}
	}
}

func TestExpandQuotes(t *testing.T) {
	got := expand("run {plan} {group} {vm}", "app", 2, "it's")
	if want := `run app 2 'it'\''s'`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A failed post command stops the plan; a run of another kind is refused
// while a killed one is unfinished;
// the rerun runs only the failed step, and the next run starts fresh.
func TestPlanRunStopsAndResumes(t *testing.T) {
	ctx := context.Background()
	p, f, h := newPlanSite(t, "db", "web", "app")
	if _, err := p.Create(ctx, PlanSpec{Name: "app", Groups: [][]string{{"db"}, {"web", "app"}},
		Pre: []string{"pre {group} {vm}"}, Post: []string{"post {group}", "post {group} {vm} fail"}}); err != nil {
		t.Fatal(err)
	}
	h.broken = true
	_, err := p.Run(ctx, "app", KindUnplanned, "", "")
	if !errors.Is(err, errHook) || !strings.Contains(err.Error(), "stopped at group 2: post command for VM app") {
		t.Fatalf("run: %v", err)
	}
	calls := f.take()
	if len(calls) != 3 || calls[0] != "unplanned db" {
		t.Fatalf("calls %v: want db first, then web and app", calls)
	}
	if got := h.take(); !slices.Equal(got, []string{"post 1", "pre 1 db", "pre 2 app", "pre 2 web"}) {
		t.Fatalf("hooks %v", got)
	}
	// A run killed mid-step (no error recorded) must be finished before
	// a run of another kind; one that stopped on a failed step could be
	// given up for it.
	setErr := func(e string) {
		t.Helper()
		if err := p.Vault.Update(func(tx *vault.Tx) error {
			pl, err := tx.Plan("app")
			if err != nil {
				return err
			}
			pl.Run.Error = e
			return tx.PutPlan(pl)
		}); err != nil {
			t.Fatal(err)
		}
	}
	setErr("")
	if _, err := p.Run(ctx, "app", KindTest, "", ""); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "asr plan failover app --unplanned") {
		t.Fatalf("another kind while unfinished: %v", err)
	}
	setErr("post failed")
	h.broken = false
	res, err := p.Run(ctx, "app", KindUnplanned, "", "")
	if err != nil || !res.Resumed || !res.Finished {
		t.Fatalf("rerun: %+v, %v", res, err)
	}
	if calls := f.take(); len(calls) != 0 {
		t.Fatalf("rerun failed over %v again", calls)
	}
	if got := h.take(); !slices.Equal(got, []string{"post 2 app fail", "post 2 web fail"}) {
		t.Fatalf("rerun hooks %v", got)
	}
	res, err = p.Run(ctx, "app", KindTest, "", "")
	if err != nil || res.Resumed || len(f.take()) != 3 {
		t.Fatalf("a new run after a finished one: %+v, %v", res, err)
	}
}

// Failback takes the groups last first; {group} keeps the plan's numbers.
func TestPlanFailbackReverses(t *testing.T) {
	ctx := context.Background()
	p, f, h := newPlanSite(t, "db", "web")
	if _, err := p.Create(ctx, PlanSpec{Name: "app", Groups: [][]string{{"db"}, {"web"}}, Pre: []string{"pre {group}"}}); err != nil {
		t.Fatal(err)
	}
	var steps []string
	p.Step = func(st PlanStep) { steps = append(steps, st.Step+" "+st.VM+st.Command) }
	if _, err := p.Run(ctx, "app", KindFailback, "", ""); err != nil {
		t.Fatal(err)
	}
	if want := []string{"pre pre 2", "failback web", "pre pre 1", "failback db"}; !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	if got := f.take(); !slices.Equal(got, []string{"failback web", "failback db"}) {
		t.Fatalf("calls %v", got)
	}
	h.take()
}

// A VM this run failed over before it was killed (its failover started
// after the run) is done; the rerun does not fail it over again.
func TestPlanRunSkipsVMsItMoved(t *testing.T) {
	ctx := context.Background()
	p, f, _ := newPlanSite(t, "db", "web")
	if _, err := p.Create(ctx, PlanSpec{Name: "app", Groups: [][]string{{"db", "web"}}}); err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC()
	err := p.Vault.Update(func(tx *vault.Tx) error {
		pl, err := tx.Plan("app")
		if err != nil {
			return err
		}
		pl.Run = &vault.PlanRun{Kind: KindUnplanned, Point: "latest", Started: started, Phase: vault.PlanVMs}
		it, _ := tx.Item("db")
		it.State, it.Failover = vault.StateFailedOver, &vault.Failover{Kind: KindUnplanned, Started: started.Add(time.Millisecond), Step: stepDone}
		if err := tx.PutItem(it); err != nil {
			return err
		}
		return tx.PutPlan(pl)
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Run(ctx, "app", KindUnplanned, "", "")
	if err != nil || !res.Finished {
		t.Fatalf("%+v, %v", res, err)
	}
	if got := f.take(); !slices.Equal(got, []string{"unplanned web"}) {
		t.Fatalf("calls %v, want web only", got)
	}
}

// A plan is copied to its VMs' target; a recovery site imports it, keeps
// its own run, and drops it when it is gone from the target.
func TestPlanOnTargetAndImport(t *testing.T) {
	ctx := context.Background()
	p, _, _ := newPlanSite(t, "db")
	pl, err := p.Create(ctx, PlanSpec{Name: "app", Groups: [][]string{{"db"}}, Post: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Create(ctx, PlanSpec{Name: "app", Groups: [][]string{{"db"}}}); !errors.Is(err, vault.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	if _, err := p.Create(ctx, PlanSpec{Name: "other", Groups: [][]string{{"nosuch"}}}); !errors.Is(err, vault.ErrNotFound) || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("unknown VM: %v", err)
	}
	url := pl.Targets[0]
	tg, err := target.Open(ctx, url, target.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	plans, err := catalog.Plans(ctx, tg)
	if err != nil || len(plans) != 1 || plans[0].Groups[0].Post != "x" {
		t.Fatalf("on target: %+v, %v", plans, err)
	}
	dr, err := vault.Init(filepath.Join(t.TempDir(), "dr.db"), "dr", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	imp := func(plans []catalog.Plan) (got []vault.Plan) {
		err := dr.Update(func(tx *vault.Tx) error {
			if _, err := importPlans(tx, plans, url); err != nil {
				return err
			}
			got, err = tx.Plans()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := imp(plans)
	if len(got) != 1 || got[0].Name != "app" || got[0].Targets[0] != url {
		t.Fatalf("imported %+v", got)
	}
	// An unfinished run stays through a sync, even when the plan goes.
	dr.Update(func(tx *vault.Tx) error {
		got[0].Run = &vault.PlanRun{Kind: KindUnplanned, Phase: vault.PlanPost}
		return tx.PutPlan(got[0])
	})
	if got = imp(plans); got[0].Run == nil {
		t.Fatal("sync dropped the run")
	}
	if got = imp(nil); len(got) != 1 {
		t.Fatal("sync dropped a plan with an unfinished run")
	}
	if _, err := p.Delete(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if plans, _ := catalog.Plans(ctx, tg); len(plans) != 0 {
		t.Fatalf("delete left %+v on the target", plans)
	}
}
