// Package vault keeps a site's state in one bbolt file: the site record,
// replication policies, protected items, recovery points, jobs and
// recovery plans (with the progress of each plan's latest run).
//
// Decisions:
//   - The file is opened for one logical step at a time (Update or View) and
//     closed again, so a long job (an initial copy of hours) never blocks
//     `asr status` or cron. Long operations on one VM take an operation lock
//     instead (LockVM). Both locks are flock(2) files that record the holder's
//     PID and command, so a second process waits up to its timeout and then
//     fails with ErrLocked naming the holder.
//   - Records are JSON inside bbolt buckets created at open; jobs use
//     big-endian keys from NextSequence so they list in order.
//   - meta/schema holds the schema version; a newer file is refused
//     (ErrSchema) rather than half understood.
//   - The file is created 0600. No credential is ever stored: a target is
//     recorded by URL only, and credentials come from config or environment.
//
// Damage. A state file can be cut short, overwritten in part, replaced by
// something else, or never have been one. bbolt trusts its file: it maps it
// and follows its page ids, so damage is a panic, a SIGBUS or a silently
// older state. So:
//   - Before every transaction, and before any open for writing (opening an
//     empty or short file for writing already writes to it), the vault
//     reads the file with plain reads: it must be a non-empty regular file,
//     one of its two meta pages must be valid (magic, version 2, FNV-1a
//     checksum), the file must be as long as that meta's page count says,
//     and the freelist and root pages it names must carry their own ids.
//     These are a few small reads; the file's size does not matter.
//   - During the transaction, memory faults are panics (SetPanicOnFault) and
//     every panic in bbolt or the vault, and every record that does not
//     decode, is ErrCorrupt. A transaction that met damage never commits,
//     even if the caller ignored the error; bbolt rolls back on a panic. A
//     panic in the caller's own function is re-raised, not blamed on the
//     file.
//   - So a damaged file is never written to. ErrCorrupt names the file and
//     points to `asr state check` and `asr state rebuild`.
//   - Per-transaction checks see only the pages a transaction reads: junk in
//     a page nobody reads (an old job) is found by Check, which reads every
//     reachable page with plain reads, runs bbolt's own consistency check
//     and decodes every record. Check opens read only.
//   - One damaged meta page is not an error: bbolt falls back to the other
//     one, the state as of one transaction earlier, so the last change may
//     be lost. Vault.Warn gets one line saying so, once per Vault, and
//     Check reports it. The next write replaces the damaged page.
//   - The operating system refusing (permissions, a read-only mount) is
//     ErrAccess. A View still works on a read-only mount: its site lock is
//     then taken on a read-only descriptor.
//
// Locks and jobs:
//   - Lock files are never truncated and never followed through a symbolic
//     link; anything but a regular file is refused. The holder line is
//     written at offset 0 padded to a fixed width, so a shorter holder
//     hides a longer one, and blanked on unlock. VM names are checked
//     (ErrInvalid) before any path is built from them.
//   - Every job holds its VM's lock while it runs, and flocks die with their
//     process. So a Running job whose VM lock is free belongs to a process
//     that was killed or crashed: LockVM marks such jobs of its VM
//     Interrupted, and SweepJobs (run by `asr jobs`) marks every one whose
//     lock it can take at once. Nothing is written when there is nothing to
//     mark.
package vault
