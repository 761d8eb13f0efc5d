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
// and ship its last writes (a recovery site that replicates a VM itself,
// after a reverse reprotect, is that VM's primary). With no host driver it goes on only when no
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
//
// # Failback and reprotect
//
// A committed failover comes home, or is protected where it runs:
//
//	Committed ──failback──▶ FailbackInProgress ──VM started at──▶ FailedBack
//	    │                   (sync, shutdown,      the primary        │
//	    │                    final, start, done)        failback commit
//	    │                                                            ▼
//	    │ reprotect --target URL             FailbackCommitted ──reprotect──▶
//	    ▼ (at the site that failed over)     (at the primary)   ResyncRequired
//	InitialReplication ─seed copy─▶ ResyncRequired ──resync──▶ Protected
//
// Failback runs where the failover ran; it reads the recovered disks and
// writes the original ones (their paths at the primary, or new fixed VHDs
// in --alternate-location). It is the resync's block sync engine
// (replica.SyncBlocks) run the other way: a first pass while the
// recovered VM runs, a final pass after the host driver shut it down,
// both sending only the 64 KiB blocks that differ, checkpointed per batch
// in Item.Failback. The first pass keeps a checksum map of the primary's
// disks beside the state file, so the final pass, the VM's downtime,
// reads only the recovered disks. The recovered disks are never written, so a failback
// stopped anywhere leaves the recovered VM able to run, and the rerun goes
// on. Failback commit removes what the failover made at the recovery
// site, as cleanup does for a test, and records FailbackCommitted on the
// target (catalog.Failover, with the alternate disks' paths), so the
// primary's own state file learns the VM is home.
//
// Reprotect after a failback runs at the primary: the replica still holds
// the failover's point, so a full resync seeds it and only changed blocks
// travel. Reprotect after a committed failover (--target, a target at the
// primary site) makes the recovered disks this site's protected disks:
// each new replica is first copied from the original disk (Disk.Seed),
// then a full resync sends the blocks in which the recovered disk
// differs. A recovery site replicates such an item itself (its target is
// not the one it imports from), and Sync leaves it alone. Every point
// records the site that made it, so one history shows both directions.
//
// # Recovery plans
//
// A plan (Plans, vault.Plan) fails groups of VMs over in order, the VMs of
// a group in parallel, each through the same Runner method a single VM
// uses, with the group's pre and post commands around them (hook.Run; a
// command holding {vm} runs once per VM). A failback takes the groups last
// first. The run's progress is its own record in the plan (vault.PlanRun:
// kind, point, next group, phase pre, vms or post, the VMs of the phase
// done), saved after every step, so a failed or killed run is resumed by
// the same command at the step that did not finish. Only a step killed
// before its save runs again (commands should be safe to repeat); a VM
// the run moved just before a kill is recognised by its failover's start
// time, later than the run's, and not failed over twice. While a run is
// unfinished, a run of another kind is ErrState.
// Plans are copied to their VMs' targets (catalog.Plan) and imported by
// Sync, so a recovery site runs them with the primary gone.
package failover
