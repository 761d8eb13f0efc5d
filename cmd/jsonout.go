package cmd

import (
	"time"

	"github.com/asr-project/asr/failover"
	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

// The shapes -o json prints. They are types of their own, made from the
// engine's and the state file's records, so a change to a record never
// changes what a script reads; testdata/script/json_shapes.txtar pins
// every key. One rule for each kind of value:
//
//   - times: RFC 3339 in UTC ("2026-12-03T08:00:00Z"), omitted when unknown;
//   - durations: Go duration strings ("30s", "5m0s"), which time.ParseDuration
//     and people both read;
//   - sizes and byte counts: integers, in keys ending in _bytes or named bytes;
//   - lists: [] when empty, never null.

type policyJSON struct {
	Name               string `json:"name"`
	Frequency          string `json:"frequency"`
	Retention          string `json:"retention"`
	AppConsistentEvery string `json:"app_consistent_every"`
	ResyncWindow       string `json:"resync_window"`
	FreezeCommand      string `json:"freeze_command"`
	ThawCommand        string `json:"thaw_command"`
	BandwidthWork      int64  `json:"bandwidth_work_hours_bytes_per_second"`
	BandwidthOther     int64  `json:"bandwidth_other_hours_bytes_per_second"`
}

func policyOut(p vault.Policy) policyJSON {
	return policyJSON{Name: p.Name, Frequency: p.Frequency.String(), Retention: p.Retention.String(),
		AppConsistentEvery: p.AppConsistentEvery.String(), ResyncWindow: p.ResyncWindow,
		FreezeCommand: p.FreezeCommand, ThawCommand: p.ThawCommand, BandwidthWork: p.BandwidthWork, BandwidthOther: p.BandwidthOther}
}

type diskJSON struct {
	Name         string `json:"name"`
	Path         string `json:"path"`
	Format       string `json:"format"`
	SizeBytes    int64  `json:"size_bytes"`
	Replica      string `json:"replica"`
	ReplicaBytes int64  `json:"replica_size_bytes"`
}

type resyncJSON struct {
	RunsAt        *time.Time `json:"runs_at,omitempty"`
	Done          float64    `json:"done_ratio"`
	ComparedBytes int64      `json:"compared_bytes"`
	SentBytes     int64      `json:"sent_bytes"`
}

type statusJSON struct {
	VM              string        `json:"vm"`
	Policy          string        `json:"policy"`
	Target          string        `json:"target"`
	State           string        `json:"state"`
	Health          string        `json:"health"`
	Reason          string        `json:"reason"`
	Disks           []diskJSON    `json:"disks"`
	Points          int           `json:"points"`
	LastPoint       string        `json:"last_point"`
	LastPointAt     *time.Time    `json:"last_point_at,omitempty"`
	RPO             string        `json:"rpo"`
	Frequency       string        `json:"frequency"`
	RPOMissed       bool          `json:"rpo_missed"`
	NextDue         *time.Time    `json:"next_due,omitempty"`
	PendingLogBytes int64         `json:"pending_log_bytes"`
	InitialCopy     float64       `json:"initial_copy_ratio"`
	Resync          *resyncJSON   `json:"resync,omitempty"`
	Failover        *failoverJSON `json:"failover,omitempty"`
	TestFailover    *failoverJSON `json:"test_failover,omitempty"`
	Failback        *failbackJSON `json:"failback,omitempty"`
	Failures        int           `json:"failures"`
	LastError       string        `json:"last_error"`
}

// failoverJSON is a failover as status shows it.
type failoverJSON struct {
	Kind      string    `json:"kind"`
	Point     string    `json:"point"`
	PointTime time.Time `json:"point_time"`
	Name      string    `json:"name"`
	Dir       string    `json:"dir"`
	Disks     []string  `json:"disks"`
	NextStep  string    `json:"next_step"`
	Started   time.Time `json:"started"`
	Host      string    `json:"host,omitempty"`
}

func failoverOut(f *vault.Failover) *failoverJSON {
	if f == nil {
		return nil
	}
	j := &failoverJSON{Kind: f.Kind, Point: f.Point, PointTime: f.PointTime.UTC(), Name: f.Name, Dir: f.Dir, Disks: []string{},
		NextStep: f.Step, Started: f.Started.UTC(), Host: f.Host}
	for _, d := range f.Disks {
		j.Disks = append(j.Disks, d.Path)
	}
	return j
}

// failbackJSON is a failback as status shows it.
type failbackJSON struct {
	NextStep  string    `json:"next_step"`
	Alternate string    `json:"alternate,omitempty"`
	Started   time.Time `json:"started"`
	SentBytes int64     `json:"sent_bytes"`
	Host      string    `json:"host,omitempty"`
}

func failbackOut(f *vault.Failback) *failbackJSON {
	if f == nil {
		return nil
	}
	return &failbackJSON{NextStep: f.Step, Alternate: f.Alternate, Started: f.Started.UTC(), SentBytes: f.Sent(), Host: f.Host}
}

func statusOut(st []replica.Status) []statusJSON {
	out := []statusJSON{}
	for _, s := range st {
		j := statusJSON{VM: s.VM, Policy: s.Policy, Target: s.Target, State: s.State, Health: s.Health, Reason: s.HealthReason,
			Disks: []diskJSON{}, Points: s.Points, LastPoint: s.LastPoint, LastPointAt: utc(s.LastPointAt), RPO: s.RPO.String(),
			Frequency: s.Frequency.String(), RPOMissed: s.RPOMissed, NextDue: utc(s.NextDue), PendingLogBytes: s.PendingBytes,
			InitialCopy: s.Copied, Failures: s.Failures, LastError: s.LastError,
			Failover: failoverOut(s.Failover), TestFailover: failoverOut(s.Test), Failback: failbackOut(s.Failback)}
		if s.LastPointAt.IsZero() {
			j.RPO = ""
		}
		for _, d := range s.Disks {
			j.Disks = append(j.Disks, diskJSON{d.Name, d.Path, d.Format, d.Size, d.Replica, d.ReplicaSize})
		}
		if s.State == vault.StateResyncRequired || s.State == vault.StateResyncing {
			j.Resync = &resyncJSON{RunsAt: utc(s.ResyncAt), Done: s.ResyncDone, ComparedBytes: s.ResyncCompared, SentBytes: s.ResyncSent}
		}
		out = append(out, j)
	}
	return out
}

type pointJSON struct {
	ID            string    `json:"id"`
	VM            string    `json:"vm"`
	Time          time.Time `json:"time"`
	AppConsistent bool      `json:"app_consistent"`
	Disks         []string  `json:"disks"`
	Bytes         int64     `json:"bytes"`
	Site          string    `json:"site"` // the site that replicated it: its direction
}

func pointsOut(pts []vault.Point) []pointJSON {
	out := []pointJSON{}
	for _, p := range pts {
		out = append(out, pointJSON{p.ID, p.VM, p.Time.UTC(), p.AppConsistent, append([]string{}, p.Disks...), p.Bytes, p.Site})
	}
	return out
}

type stepJSON struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	DoneBytes  int64  `json:"done_bytes"`
	TotalBytes int64  `json:"total_bytes"`
}

type jobJSON struct {
	ID       uint64     `json:"id"`
	Kind     string     `json:"kind"`
	VM       string     `json:"vm"`
	State    string     `json:"state"`
	Started  time.Time  `json:"started"`
	Ended    *time.Time `json:"ended,omitempty"`
	Duration string     `json:"duration"`
	Bytes    int64      `json:"bytes"`
	Error    string     `json:"error"`
	Steps    []stepJSON `json:"steps"`
}

func jobOut(j vault.Job) jobJSON {
	o := jobJSON{ID: j.ID, Kind: j.Kind, VM: j.VM, State: j.State, Started: j.Started.UTC(), Ended: utc(j.Ended),
		Duration: j.Duration.String(), Bytes: j.Bytes, Error: j.Error, Steps: []stepJSON{}}
	for _, s := range j.Steps {
		o.Steps = append(o.Steps, stepJSON{s.Name, s.State, s.Done, s.Total})
	}
	return o
}

func jobsOut(js []vault.Job) []jobJSON {
	out := []jobJSON{}
	for _, j := range js {
		out = append(out, jobOut(j))
	}
	return out
}

// resultJSON is one VM's outcome of replicate, resync or resume.
type resultJSON struct {
	VM            string `json:"vm"`
	Point         string `json:"point"`
	Bytes         int64  `json:"bytes"`
	ComparedBytes int64  `json:"compared_bytes"`
	ReadBackBytes int64  `json:"read_back_bytes"`
	Duration      string `json:"duration"`
	Skipped       string `json:"skipped"`
	Busy          bool   `json:"busy"`
	Error         string `json:"error"`
}

func resultsOut(res []replica.Result) []resultJSON {
	out := []resultJSON{}
	for _, r := range res {
		out = append(out, resultJSON{r.VM, r.Point, r.Bytes, r.Compared, r.ReadBack, r.Duration.String(), r.Skipped, r.Busy, r.Error})
	}
	return out
}

// utc is t in UTC, or nil for the zero time (omitted).
func utc(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// planJSON is a recovery plan as plan create, list and show print it, with
// its latest run.
type planJSON struct {
	Name    string          `json:"name"`
	Groups  []planGroupJSON `json:"groups"`
	Timeout string          `json:"timeout"`
	Targets []string        `json:"targets"`
	Created time.Time       `json:"created"`
	Run     *planRunJSON    `json:"run,omitempty"`
}

type planGroupJSON struct {
	Group int      `json:"group"`
	VMs   []string `json:"vms"`
	Pre   string   `json:"pre"`
	Post  string   `json:"post"`
}

// planRunJSON is a plan's latest run: NextGroup and Phase say where an
// unfinished one resumes (0 and "" once finished), Done what of that
// phase is done.
type planRunJSON struct {
	Kind      string     `json:"kind"`
	Point     string     `json:"point"`
	Started   time.Time  `json:"started"`
	Ended     *time.Time `json:"ended,omitempty"`
	Finished  bool       `json:"finished"`
	NextGroup int        `json:"next_group"`
	Phase     string     `json:"phase"`
	Done      []string   `json:"done"`
	Error     string     `json:"error"`
}

func planOut(pl vault.Plan) planJSON {
	o := planJSON{Name: pl.Name, Groups: []planGroupJSON{}, Timeout: pl.Timeout.String(),
		Targets: append([]string{}, pl.Targets...), Created: pl.Created.UTC()}
	for i, g := range pl.Groups {
		o.Groups = append(o.Groups, planGroupJSON{i + 1, append([]string{}, g.VMs...), g.Pre, g.Post})
	}
	if r := pl.Run; r != nil {
		o.Run = &planRunJSON{Kind: r.Kind, Point: r.Point, Started: r.Started.UTC(), Ended: utc(r.Ended), Finished: r.Finished,
			NextGroup: failover.NextGroup(pl), Done: append([]string{}, r.Done...), Error: r.Error}
		if !r.Finished {
			o.Run.Phase = r.Phase
		}
	}
	return o
}

// planResultJSON is what plan failover and plan failback did in this run:
// each step, with the VM's state after a failover or failback step.
type planResultJSON struct {
	Plan    string `json:"plan"`
	Kind    string `json:"kind"`
	Point   string `json:"point"`
	Resumed bool   `json:"resumed"`
	// Abandoned: an unfinished run of another kind given up for this one.
	Abandoned string         `json:"abandoned,omitempty"`
	Finished  bool           `json:"finished"`
	Steps     []planStepJSON `json:"steps"`
}

type planStepJSON struct {
	Group   int    `json:"group"`
	Step    string `json:"step"`
	VM      string `json:"vm"`
	Command string `json:"command"`
	State   string `json:"state"`
	Point   string `json:"point"`
	Host    string `json:"host"`
	Note    string `json:"note"`
}

func planResultOut(res failover.PlanResult) planResultJSON {
	o := planResultJSON{Plan: res.Plan, Kind: res.Kind, Point: res.Point, Resumed: res.Resumed, Abandoned: res.Abandoned, Finished: res.Finished, Steps: []planStepJSON{}}
	for _, st := range res.Steps {
		j := planStepJSON{Group: st.Group, Step: st.Step, VM: st.VM, Command: st.Command, Note: st.Note}
		if r := st.Result; r != nil {
			j.State, j.Point, j.Host = r.State, r.Point, r.Host
		}
		if r := st.Failback; r != nil {
			j.State, j.Point, j.Host = r.State, r.Point, r.Host
		}
		o.Steps = append(o.Steps, j)
	}
	return o
}
