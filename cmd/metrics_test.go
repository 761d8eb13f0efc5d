package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

// TestMetricsParse renders two VMs, one protected after a cycle and one
// still in its initial copy, and reads them back with Prometheus' own
// text-format parser.
func TestMetricsParse(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	web := vmMetrics{
		Status: replica.Status{
			Item: vault.Item{VM: "web", State: vault.StateResyncing, Health: vault.HealthWarning,
				LastPointAt: now.Add(-90 * time.Second)},
			Frequency: 5 * time.Minute, Points: 3, PendingBytes: 4096, Copied: 1,
			ResyncDone: 0.25, ResyncCompared: 1 << 20, ResyncSent: 65536,
		},
		LastCycle: &vault.Job{Bytes: 123456, Duration: 1500 * time.Millisecond},
	}
	fresh := vmMetrics{Status: replica.Status{
		Item:      vault.Item{VM: `we"ird\vm`, State: vault.StateInitialReplication, Health: vault.HealthNormal},
		Frequency: time.Minute, Copied: 0.5,
	}}
	var b bytes.Buffer
	run := runMetrics{At: now, Duration: 2 * time.Second, OK: false}
	if err := writeMetrics(&b, run, []vmMetrics{web, fresh}); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("Prometheus can't parse the metrics: %v\n%s", err, b.String())
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "asr_") || f.GetType() != dto.MetricType_GAUGE || f.GetHelp() == "" {
			t.Errorf("%s: want an asr_ gauge with help, got type %v help %q", name, f.GetType(), f.GetHelp())
		}
	}
	get := func(name string, lbl ...string) (float64, bool) {
		for _, m := range fams[name].GetMetric() {
			if labelsAre(m, lbl) {
				return m.GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"asr_replicate_last_run_timestamp_seconds", nil, 1_700_000_000},
		{"asr_replicate_last_run_duration_seconds", nil, 2},
		{"asr_replicate_last_run_success", nil, 0},
		{"asr_vm_rpo_seconds", []string{"vm", "web"}, 90},
		{"asr_vm_last_point_timestamp_seconds", []string{"vm", "web"}, 1_700_000_000 - 90},
		{"asr_vm_copy_frequency_seconds", []string{"vm", "web"}, 300},
		{"asr_vm_recovery_points", []string{"vm", "web"}, 3},
		{"asr_vm_pending_log_bytes", []string{"vm", "web"}, 4096},
		{"asr_vm_resync_progress_ratio", []string{"vm", "web"}, 0.25},
		{"asr_vm_resync_compared_bytes", []string{"vm", "web"}, 1 << 20},
		{"asr_vm_resync_sent_bytes", []string{"vm", "web"}, 65536},
		{"asr_vm_last_cycle_bytes", []string{"vm", "web"}, 123456},
		{"asr_vm_last_cycle_duration_seconds", []string{"vm", "web"}, 1.5},
		{"asr_vm_health", []string{"vm", "web", "health", "Warning"}, 1},
		{"asr_vm_health", []string{"vm", "web", "health", "Normal"}, 0},
		{"asr_vm_health", []string{"vm", "web", "health", "Critical"}, 0},
		{"asr_vm_state", []string{"vm", "web", "state", "Resyncing"}, 1},
		{"asr_vm_state", []string{"vm", "web", "state", "Protected"}, 0},
		{"asr_vm_state", []string{"vm", `we"ird\vm`, "state", "InitialReplication"}, 1},
		{"asr_vm_initial_copy_progress_ratio", []string{"vm", `we"ird\vm`}, 0.5},
		{"asr_vm_copy_frequency_seconds", []string{"vm", `we"ird\vm`}, 60},
	}
	for _, w := range want {
		if got, ok := get(w.name, w.labels...); !ok || got != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	// Before the first point and the first cycle: absent, not 0.
	for _, name := range []string{"asr_vm_rpo_seconds", "asr_vm_last_point_timestamp_seconds",
		"asr_vm_last_cycle_bytes", "asr_vm_last_cycle_duration_seconds"} {
		if v, ok := get(name, "vm", `we"ird\vm`); ok {
			t.Errorf("%s of a VM with no point or cycle = %v, want no sample", name, v)
		}
	}
	if n := len(fams["asr_vm_state"].GetMetric()); n != 8 {
		t.Errorf("asr_vm_state has %d series, want 4 states x 2 VMs", n)
	}
}

func labelsAre(m *dto.Metric, kv []string) bool {
	if len(m.GetLabel()) != len(kv)/2 {
		return false
	}
	for _, l := range m.GetLabel() {
		found := false
		for j := 0; j+1 < len(kv); j += 2 {
			if l.GetName() == kv[j] && l.GetValue() == kv[j+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestWriteFileAtomicLeavesOnlyTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "asr.prom")
	for _, data := range []string{"first\n", "second\n"} {
		if err := writeFileAtomic(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "second\n" {
		t.Fatalf("file holds %q (%v), want the second write", got, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 so node_exporter can read it", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("folder holds %d entries, want only asr.prom (no temporary file left)", len(ents))
	}
	// An unwritable place leaves nothing behind and says so.
	if err := writeFileAtomic(filepath.Join(dir, "none", "asr.prom"), nil, 0o644); err == nil {
		t.Error("writing into a missing folder succeeded")
	}
}
