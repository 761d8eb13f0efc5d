package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/vault"
)

// writeMetricsFile replaces path with the metrics of the asr replicate run
// that began at start and ended with runErr, and of every protected VM
// (not only those the run named or found due), for node_exporter's
// textfile collector. e is nil when the run could not open the site: the
// file then holds only the run's metrics, success 0, so a stale RPO is
// never shown as current. A file that can't be written is ErrLocal; the
// VMs' status that can't be read is the vault's error, after the file (with
// the run's metrics, success 0) is written.
func writeMetricsFile(path string, e *replica.Engine, start time.Time, runErr error) error {
	var vms []vmMetrics
	gatherErr := errors.New("no site")
	if e != nil {
		vms, gatherErr = gatherMetrics(e)
	}
	run := runMetrics{At: time.Now(), Duration: time.Since(start), OK: runErr == nil && gatherErr == nil}
	var b bytes.Buffer
	if err := writeMetrics(&b, run, vms); err != nil {
		return err
	}
	if err := writeFileAtomic(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("metrics file %s: %w: %v; fix its folder or pass another --metrics-file", path, replica.ErrLocal, err)
	}
	if e != nil && gatherErr != nil {
		return fmt.Errorf("metrics file %s: reading the VMs' status: %w", path, gatherErr)
	}
	return nil
}

// gatherMetrics reads every protected VM's status and newest finished
// replicate cycle from the state file.
func gatherMetrics(e *replica.Engine) ([]vmMetrics, error) {
	st, err := e.Statuses(nil)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(st))
	for i, s := range st {
		names[i] = s.VM
	}
	var last map[string]vault.Job
	// "replicate" is the kind replica records for a cycle (asr jobs shows it).
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { last, err = tx.LastJobs("replicate", names); return }); err != nil {
		return nil, err
	}
	out := make([]vmMetrics, len(st))
	for i, s := range st {
		out[i].Status = s
		if j, ok := last[s.VM]; ok {
			out[i].LastCycle = &j
		}
	}
	return out, nil
}

// writeFileAtomic replaces path with data so that a reader sees the old
// file or the new one, never part of one, even across a crash: a temporary
// file in the same folder (named .<name>.tmp-*, which node_exporter's
// *.prom pattern skips), fsync, chmod perm, rename over path, fsync of the
// folder. On error path is untouched and the temporary file removed.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
