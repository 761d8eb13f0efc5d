package catalog

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/asr-project/asr/replica/target"
)

// Plan is a recovery plan as the target keeps it, so a recovery site can
// import it (asr sync) and run it with the primary gone. It holds the
// definition only: how far a run got is each site's own business. Its
// object is plans/<name>.json, beside vms/ (layout 1).
type Plan struct {
	Layout  int           `json:"layout"`
	Name    string        `json:"name"`
	Groups  []PlanGroup   `json:"groups"`
	Timeout time.Duration `json:"timeout"`
	// Site is the site that wrote it; Time when.
	Site string    `json:"site"`
	Time time.Time `json:"time"`
}

// PlanGroup is one group of a plan.
type PlanGroup struct {
	VMs  []string `json:"vms"`
	Pre  string   `json:"pre,omitempty"`
	Post string   `json:"post,omitempty"`
}

const planPrefix = "plans/"

func planKey(name string) string { return planPrefix + name + ".json" }

// PutPlan writes a plan, replacing one of the same name.
func PutPlan(ctx context.Context, t target.Target, p Plan) error {
	p.Layout = Layout
	return put(ctx, t, planKey(p.Name), p)
}

// DeletePlan removes a plan; a missing one is success.
func DeletePlan(ctx context.Context, t target.Target, name string) error {
	return t.DeleteObject(ctx, planKey(name))
}

// Plans reads every plan the target holds, by name.
func Plans(ctx context.Context, t target.Target) ([]Plan, error) {
	keys, err := t.ListObjects(ctx, planPrefix)
	if err != nil {
		return nil, err
	}
	var out []Plan
	for _, k := range keys {
		name, ok := strings.CutSuffix(strings.TrimPrefix(k, planPrefix), ".json")
		if !ok || strings.Contains(name, "/") {
			continue
		}
		var p Plan
		if err := get(ctx, t, k, "recovery plan "+name, &p); err != nil {
			if errors.Is(err, target.ErrNotFound) {
				continue // deleted since the listing
			}
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
