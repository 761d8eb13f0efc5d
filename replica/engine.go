package replica

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/throttle"
	"github.com/asr-project/asr/vault"
)

// Events receives what the engine does; the command line renders it.
// Implementations must be safe for concurrent use.
type Events interface {
	// Progress reports done of total bytes for a VM's current step.
	Progress(vm, step string, done, total int64)
	// Event reports one thing that happened (one line in cron output).
	Event(vm, msg string)
	// Warning reports something the operator should act on that did not
	// stop the job (a failed freeze): stderr, even under --quiet.
	Warning(vm, msg string)
}

// Engine runs protection and replication for one site.
type Engine struct {
	Vault *vault.Vault
	// OpenTarget opens a target by URL (target.Open with the site's
	// configuration).
	OpenTarget func(ctx context.Context, url string) (target.Target, error)
	Events     Events // nil: nothing reported
	Now        func() time.Time
	// HookTimeout bounds each operator command; 0 is hook.DefaultTimeout.
	HookTimeout time.Duration
	// Host returns the host driver that freezes and thaws a VM for an
	// app-consistent point when its policy names no commands; nil: none.
	Host func(it vault.Item) (host.Host, error)
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) progress(vm, step string, done, total int64) {
	if e.Events != nil {
		e.Events.Progress(vm, step, done, total)
	}
}

func (e *Engine) event(vm, format string, args ...any) {
	if e.Events != nil {
		e.Events.Event(vm, fmt.Sprintf(format, args...))
	}
}

func (e *Engine) warn(vm, format string, args ...any) {
	if e.Events != nil {
		e.Events.Warning(vm, fmt.Sprintf(format, args...))
	}
}

// TrackDir is where trackers keep their lock files and control sockets.
func (e *Engine) TrackDir() string { return e.Vault.Path() + ".track" }

func (e *Engine) openTarget(ctx context.Context, url string) (target.Target, error) {
	t, err := e.OpenTarget(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open target %s: %w", url, errors.Join(ErrTarget, err))
	}
	return t, nil
}

// limit wraps a target in the policy's bandwidth schedule: work hours are
// Monday to Friday, 08:00 to 18:00 local time.
func (e *Engine) limit(t target.Target, policy string) (target.Target, error) {
	var p vault.Policy
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { p, err = tx.Policy(policy); return }); err != nil {
		return nil, err
	}
	if p.BandwidthWork == 0 && p.BandwidthOther == 0 {
		return t, nil
	}
	s := throttle.Schedule{WorkHours: p.BandwidthWork, OtherHours: p.BandwidthOther, WorkStart: 8 * time.Hour, WorkEnd: 18 * time.Hour}
	return throttle.Limit(t, s.Rate), nil
}

var (
	vmName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	diskName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
)

// CheckName rejects VM and site names that can't be used in file and blob
// names; what says which kind of name it is.
func CheckName(what, vm string) error {
	if !vmName.MatchString(vm) {
		return fmt.Errorf("%s name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit: %w", what, vm, ErrInvalid)
	}
	return nil
}

// DiskName derives a disk's name from its file name: the base name without
// its extension, other characters replaced by '-'.
func DiskName(path string) string {
	base := path[strings.LastIndex(path, "/")+1:]
	if i := strings.IndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	b := []byte(base)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// replicaName is a disk's name on the target.
func replicaName(vm, disk string) string { return vm + "." + disk }

// job records one long operation in the vault, step by step.
type job struct {
	e *Engine
	j vault.Job
	// pointBase is j.Bytes when the current point's cycle began: the
	// bytes of earlier points of the same run are not this point's.
	pointBase int64
}

func (e *Engine) startJob(kind, vm string) (*job, error) {
	r := &job{e: e, j: vault.Job{Kind: kind, VM: vm, State: vault.JobRunning, Started: e.now()}}
	return r, e.Vault.Update(func(tx *vault.Tx) error { return tx.PutJob(&r.j) })
}

// step closes the running step and starts the next.
func (r *job) step(name string) error {
	r.closeStep(vault.JobSucceeded)
	r.j.Steps = append(r.j.Steps, vault.Step{Name: name, State: vault.JobRunning})
	return r.save()
}

func (r *job) closeStep(state string) {
	if n := len(r.j.Steps); n > 0 && r.j.Steps[n-1].State == vault.JobRunning {
		r.j.Steps[n-1].State = state
	}
}

func (r *job) progress(done, total int64) {
	if n := len(r.j.Steps); n > 0 {
		r.j.Steps[n-1].Done, r.j.Steps[n-1].Total = done, total
		r.e.progress(r.j.VM, r.j.Steps[n-1].Name, done, total)
	}
}

func (r *job) save() error {
	return r.e.Vault.Update(func(tx *vault.Tx) error { return tx.PutJob(&r.j) })
}

// finish records the outcome; it returns err unchanged.
func (r *job) finish(err error) error {
	r.j.Ended = r.e.now()
	r.j.Duration = r.j.Ended.Sub(r.j.Started)
	r.j.State = vault.JobSucceeded
	if err != nil {
		r.j.State = vault.JobFailed
		r.j.Error = err.Error()
	}
	r.closeStep(r.j.State)
	if serr := r.save(); err == nil {
		err = serr
	}
	return err
}
