// Package replica is the replication engine: enable protection (initial
// copy), the replicate cycle (rotate logs, apply them to the replica,
// snapshot, record the recovery point, prune, delete local logs), the
// status of protected items, and the rules for policies (policy.go: the
// values allowed, and that a policy in use or the default is not deleted).
//
// The engine sees targets only through target.Target and disks through
// replica/vhd; it prints nothing and reports progress through Events.
//
// Crash safety. Every step is idempotent and the vault says which step a VM
// is in:
//   - The initial copy persists how far it got (Disk.CopiedTo) and resumes
//     there; a replica disk that already exists for a new item is refused,
//     so resuming never mixes stale data in.
//   - A cycle first records a Pending point naming, per disk, the last log
//     it covers. Apply (absolute offsets, last write wins), snapshot (same
//     name) and the point object are all safe to redo, so a crash anywhere
//     is finished by the next run from the same Pending record.
//   - Local logs are deleted only after the point is recorded; logs at or
//     below a disk's AppliedSeq are leftovers and are removed on sight.
//   - A cycle that outlasts the copy frequency rotates again on time while
//     it applies (rotator.go) and makes those points next, in order; their
//     rotations live in memory only, so a crash loses their times, never
//     their writes (the sealed logs stay for the next run's point).
//
// Apply reads the coalesced extents of a point's logs into 32 MiB batches,
// one filling while the previous goes to target.WriteBatch, whose cost per
// batch (one sync on a file system, bounded concurrent requests on Azure)
// is the target's business.
//
// Logs that cannot be trusted (not closed properly, corrupt, a broken UUID
// chain, or more log than half the disk), and disks changed while no tracker
// ran (tracker.CheckUntracked), are never applied: the item moves to
// ResyncRequired with health Warning.
//
// Resync is a state machine over the item's State (runResync):
//
//	Protected or ResyncRequired --start--> Resyncing --compare--> Protected
//
// Start restarts each disk's log chain (tracker.Resume, or ResumeOffline
// with no tracker) and records the base it returns as AppliedSeq and
// AppliedID, so the logs after it carry every write made from then on;
// the compare, disk by disk from a checkpoint in Item.Resync, sends the
// blocks that differ; the ordinary cycle then applies those logs and
// records the first new point. Cron runs it inside the policy's resync
// window; Critical waits for asr resume.
//
// What the engine writes on a target besides the replica disks (manifest,
// point records, status, checksum maps) is package catalog's, with its own
// versioned types, so a recovery site can list points and fail over
// without the primary's state file.
package replica
