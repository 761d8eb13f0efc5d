package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newReplicateCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "replicate [VM ...] [--metrics-file PATH]",
		Short: "Ship logs and make recovery points for VMs that are due (run from cron)",
		Long: `Replicate every protected VM whose copy frequency has elapsed (or the VMs
named): rotate their logs, apply them to the replica, snapshot, record the
recovery point, prune old points and delete the shipped logs. Interrupted
at any step, the next run finishes the job. Run it every 30 seconds (the
shortest copy frequency), from dist/systemd/asr-replicate.timer or cron:

  * * * * * asr replicate --quiet
  * * * * * sleep 30; asr replicate --quiet

A point is due once nine tenths of its policy's frequency have passed, so
a run a moment early still makes it. A cycle that outlasts the frequency
rotates the logs again on time while it applies, and makes that point
next: a point's time is its rotation's, whatever the apply costs.

--metrics-file PATH (or ASR_METRICS_FILE, or metrics.file in the config)
replaces PATH after every run, also when nothing was due or a VM failed,
with Prometheus text-format metrics of every protected VM, for
node_exporter's textfile collector (--collector.textfile.directory; name
the file *.prom). The file is written whole to a temporary file beside it
and renamed into place, mode 0644. All are gauges with the label vm:

  asr_vm_rpo_seconds                   age of the newest point at the run
  asr_vm_last_point_timestamp_seconds  time of the newest point (Unix)
  asr_vm_copy_frequency_seconds        the policy's copy frequency
  asr_vm_recovery_points               points kept
  asr_vm_health{health="Normal"}       1 for the current health, 0 for the others
  asr_vm_state{state="Protected"}      1 for the current state, 0 for the others
  asr_vm_pending_log_bytes             logs waiting to ship
  asr_vm_initial_copy_progress_ratio   initial copy done, 0 to 1
  asr_vm_resync_progress_ratio         running resync's compare done, 0 to 1
  asr_vm_resync_compared_bytes         and its bytes compared
  asr_vm_resync_sent_bytes             and sent
  asr_vm_last_cycle_bytes              bytes shipped by the newest finished cycle
  asr_vm_last_cycle_duration_seconds   and its duration

and, without labels, asr_replicate_last_run_timestamp_seconds,
asr_replicate_last_run_duration_seconds and asr_replicate_last_run_success
(0 when any VM failed; when the site can't be read at all, these three are
the whole file). Before a VM's first point its RPO and point time are
absent, not 0 or NaN; between runs, time() -
asr_vm_last_point_timestamp_seconds is the live RPO. The last cycle is the
VM's newest Succeeded or Failed replicate job (asr jobs), whichever run
made it, so a VM not due this run keeps its values; it is absent before
the first. A metrics file that can't be written makes the run exit 12,
unless the run failed already: then its own code stands and the metrics
error is a warning.`,
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.v.BindPFlag("metrics.file", c.Flags().Lookup("metrics-file")); err != nil {
				return err
			}
			metrics := g.v.GetString("metrics.file")
			start := time.Now()
			e, err := g.engine()
			if err != nil {
				if metrics != "" {
					g.warn(writeMetricsFile(metrics, nil, start, err))
				}
				return err
			}
			res, err := e.Replicate(c.Context(), args)
			var merr error
			if metrics != "" {
				if merr = writeMetricsFile(metrics, e, start, err); err != nil {
					g.warn(merr) // the run's own error decides the exit code
					merr = nil
				}
			}
			if g.json() {
				if jerr := g.printJSON(resultsOut(res)); jerr != nil {
					return jerr
				}
				if err != nil {
					return reportedError{exitCode(err)}
				}
				return merr
			}
			for _, r := range res {
				switch {
				case r.Point != "" && r.Err() == nil:
					g.say("%s: point %s, %s shipped in %s", r.VM, r.Point, bytesString(r.Bytes), r.Duration.Round(1e6))
				case r.Skipped != "":
					g.say("%s: skipped: %s", r.VM, r.Skipped)
				}
			}
			if len(res) == 0 && err == nil {
				g.say("no VM is protected on this site")
			}
			if err != nil {
				return err
			}
			return merr
		},
	}
	c.Flags().String("metrics-file", "", "after the run, write Prometheus metrics to this file for node_exporter's textfile collector (env ASR_METRICS_FILE)")
	return c
}

// warn prints a failure that does not decide the exit code on stderr.
func (g *globals) warn(err error) {
	if err != nil {
		fmt.Fprintf(g.io.Err, "asr: warning: %s\n", oneLine(err.Error()))
	}
}
