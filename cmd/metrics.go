package cmd

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

// vmMetrics is what the metrics file says of one VM: its status and its
// newest finished replicate cycle (nil before the first).
type vmMetrics struct {
	replica.Status
	LastCycle *vault.Job
}

// runMetrics is what the metrics file says of the asr replicate run that
// wrote it.
type runMetrics struct {
	At       time.Time
	Duration time.Duration
	OK       bool
}

// gauge is one per-VM metric family: value returns the VM's sample, or
// false when the VM has none (a VM without a recovery point has no RPO).
type gauge struct {
	name, help string
	value      func(m vmMetrics, now time.Time) (float64, bool)
}

func always(f func(m vmMetrics) float64) func(vmMetrics, time.Time) (float64, bool) {
	return func(m vmMetrics, _ time.Time) (float64, bool) { return f(m), true }
}

func cycle(f func(j *vault.Job) float64) func(vmMetrics, time.Time) (float64, bool) {
	return func(m vmMetrics, _ time.Time) (float64, bool) {
		if m.LastCycle == nil {
			return 0, false
		}
		return f(m.LastCycle), true
	}
}

// gauges are the per-VM families, in the order they are written.
var gauges = []gauge{
	{"asr_vm_rpo_seconds", "Age of the VM's newest recovery point when the file was written; absent before the first point.",
		func(m vmMetrics, now time.Time) (float64, bool) {
			return now.Sub(m.LastPointAt).Seconds(), !m.LastPointAt.IsZero()
		}},
	{"asr_vm_last_point_timestamp_seconds", "Time of the VM's newest recovery point (Unix seconds); absent before the first point.",
		func(m vmMetrics, _ time.Time) (float64, bool) {
			return float64(m.LastPointAt.UnixNano()) / 1e9, !m.LastPointAt.IsZero()
		}},
	{"asr_vm_copy_frequency_seconds", "Copy frequency of the VM's policy: the RPO it aims at.",
		always(func(m vmMetrics) float64 { return m.Frequency.Seconds() })},
	{"asr_vm_recovery_points", "Recovery points the VM has.",
		always(func(m vmMetrics) float64 { return float64(m.Points) })},
	{"asr_vm_pending_log_bytes", "Bytes of write logs beside the VM's disks waiting to ship.",
		always(func(m vmMetrics) float64 { return float64(m.PendingBytes) })},
	{"asr_vm_initial_copy_progress_ratio", "Share of the initial copy done, 0 to 1.",
		always(func(m vmMetrics) float64 { return m.Copied })},
	{"asr_vm_resync_progress_ratio", "Share of the running resync's compare done, 0 to 1; 0 when none runs.",
		always(func(m vmMetrics) float64 { return m.ResyncDone })},
	{"asr_vm_resync_compared_bytes", "Bytes the running resync has compared; 0 when none runs.",
		always(func(m vmMetrics) float64 { return float64(m.ResyncCompared) })},
	{"asr_vm_resync_sent_bytes", "Bytes the running resync has sent; 0 when none runs.",
		always(func(m vmMetrics) float64 { return float64(m.ResyncSent) })},
	{"asr_vm_last_cycle_bytes", "Bytes shipped by the VM's newest finished replicate cycle, succeeded or failed; absent before the first.",
		cycle(func(j *vault.Job) float64 { return float64(j.Bytes) })},
	{"asr_vm_last_cycle_duration_seconds", "Duration of the VM's newest finished replicate cycle; absent before the first.",
		cycle(func(j *vault.Job) float64 { return j.Duration.Seconds() })},
}

// enums are the per-VM families with one series per possible value, 1 for
// the VM's current value and 0 for the others.
var enums = []struct {
	name, label, help string
	values            []string
	value             func(m vmMetrics) string
}{
	{"asr_vm_health", "health", "VM health: 1 for the current one.",
		[]string{vault.HealthNormal, vault.HealthWarning, vault.HealthCritical},
		func(m vmMetrics) string { return m.Health }},
	{"asr_vm_state", "state", "VM protection state: 1 for the current one.",
		[]string{vault.StateInitialReplication, vault.StateProtected, vault.StateResyncRequired, vault.StateResyncing},
		func(m vmMetrics) string { return m.State }},
}

// writeMetrics writes run and vms in the Prometheus text format (version
// 0.0.4), every family with HELP and TYPE lines, all gauges, in base
// units. RPOs are measured at run.At.
func writeMetrics(w io.Writer, run runMetrics, vms []vmMetrics) error {
	var b strings.Builder
	family := func(name, help string) { fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name) }
	sample := func(name, labels string, v float64) { fmt.Fprintf(&b, "%s%s %s\n", name, labels, number(v)) }

	family("asr_replicate_last_run_timestamp_seconds", "When asr replicate last wrote this file (Unix seconds).")
	sample("asr_replicate_last_run_timestamp_seconds", "", float64(run.At.UnixNano())/1e9)
	family("asr_replicate_last_run_duration_seconds", "How long that asr replicate run took.")
	sample("asr_replicate_last_run_duration_seconds", "", run.Duration.Seconds())
	family("asr_replicate_last_run_success", "1 if that asr replicate run succeeded for every VM it ran, 0 if anything failed.")
	sample("asr_replicate_last_run_success", "", bool01(run.OK))

	for _, g := range gauges {
		family(g.name, g.help)
		for _, m := range vms {
			if v, ok := g.value(m, run.At); ok {
				sample(g.name, labels("vm", m.VM), v)
			}
		}
	}
	for _, e := range enums {
		family(e.name, e.help)
		for _, m := range vms {
			cur := e.value(m)
			values := e.values
			if !slices.Contains(values, cur) {
				values = append(values[:len(values):len(values)], cur) // a value this asr does not know: still shown
			}
			for _, val := range values {
				sample(e.name, labels("vm", m.VM, e.label, val), bool01(val == cur))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// labels renders name/value pairs as {a="x",b="y"}, escaping the values.
func labels(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(kv[i+1])
		parts = append(parts, kv[i]+`="`+esc+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func number(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64) // no exponent: 1712345678.25, not 1.71234567825e+09
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
