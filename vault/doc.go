// Package vault keeps a site's state in one bbolt file: the site record,
// replication policies, protected items, recovery points and jobs.
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
package vault
