// Package failover gets the workload back: recovery points become disks
// again (export), and a VM moves to the recovery site (test, planned and
// unplanned failover, change-point, commit). It also keeps a recovery
// site's state file in step with the target (Sync).
//
// Everything but a planned failover reads the target only (package
// catalog: manifest, points, status), never the primary's state file, so
// it works at a recovery site when the primary is gone.
//
// # The item's state machine
//
// The failover states extend the replication states of vault.Item.State:
//
//	Protected ──planned / unplanned──▶ FailoverInProgress ──disks made,
//	    ▲  (ResyncRequired, Resyncing:      │ VM started──▶ FailedOver
//	    │   unplanned only)                  │                │  │
//	    └── a planned failover whose         │   change-point │  │ commit
//	        shutdown failed                  ◀────────────────┘  ▼
//	                                                           Committed
//
// FailoverInProgress carries Item.Failover, whose Step is the next step
// to run (planned: shutdown, final; then disks, start, done). The same
// command run again goes on from that step, so a kill -9 anywhere is
// finished by a rerun: shutting a VM down that is off, rewriting this
// failover's own disks and starting a VM that runs are all safe to redo.
// A planned failover that can't shut the source down returns to Protected
// with nothing changed. While a VM is FailoverInProgress, FailedOver or
// Committed, replicate leaves it alone (at the primary too: its source
// is shut down after a planned failover).
//
// A test failover is a second, independent record, Item.Test, that leaves
// Item.State alone, so replication goes on:
//
//	none ──failover --test──▶ disks ▶ start ▶ done ──cleanup──▶ cleanup ▶ none
//
// Its disks are <vm>-test; prune keeps its point until the cleanup, which
// removes the test VM (through the host driver), the disks, and the files
// and folder the test made, by name, nothing else.
//
// Every other transition is refused with ErrState (exit 13): the message
// says the state the VM is in and what to run instead.
//
// # Where things run
//
// A planned failover runs at the primary: only it can shut the VM down
// and ship its last writes. With no host driver it goes on only when no
// asr track serves the VM (nothing can write through asr then); it
// refuses otherwise. Unplanned and test failovers run at either site.
// Commit runs at the site that failed over. The other site learns of a
// finished failover from the target's failover record (catalog.Failover).
//
// # Recovery disks
//
// On a Local target (file) they are fixed VHDs DIR/<name>/<disk>.vhd,
// written by Export. On a target that keeps them (Azure) they are
// copies of the point's snapshots, recovery/<name>/<disk> (page blobs a
// managed disk imports), plus DIR/<name>/<name>.template.json, an ARM
// template that imports them as managed disks and makes the VM (size and
// network from asr vm set). Starting a VM is the host driver's (package
// replica/host); with none, asr says what to start and never that it
// started or created one.
//
// Commit deletes the VM's other recovery points from the target, as
// Azure Site Recovery does: the failover can no longer change point, and
// the recovery disks never depended on them.
package failover
