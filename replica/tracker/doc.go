// Package tracker records every write to a protected VM's disks in per-disk
// .hrl logs (MS-HRL v2, package hrl) and hands sealed logs to the
// replicate cycle. Its promise: replaying a disk's sealed logs in order
// over the replica yields exactly the disk, after any crash of the tracker
// or of the host, or else the disk is marked for resync. Never a silent
// difference.
//
// # Files beside each disk
//
//	<disk>.<seq>.hrl   logs, seq counting up from 1 with eight digits; each
//	                   log's PreviousUniqueId is the UniqueId of the one
//	                   before, the first's is the random chain ID recorded
//	                   when protection was enabled
//	<disk>.asr-al      the activity log (below)
//	<disk>.asr-dirty   the dirty map, only once logging stopped (below)
//	<disk>.asr-stamp   the disk's mtime when every write was last accounted for
//	<disk>.asr-untracked  evidence that the disk changed while untracked
//
// # Locks: one disk, one tracker, one writer
//
// A tracker runs only under the VM's tracker lock (an flock on
// <state>.track/<vm>.lock), taken by replica.Engine.StartTracker before it
// reads where each log chain stands. `asr replicate` tries the same lock:
// if it gets it, no tracker runs, and it recovers and lists the logs while
// holding it; if not, it asks the running tracker to rotate over the
// control socket. So a log never has two writers, and a tracker numbers
// its first log after every log a cycle has recorded.
//
// While it serves a disk the tracker also holds qemu's image locks on the
// disk file (LockImage): qemu, qemu-img and qemu-io refuse to open it for
// writing or resizing unless forced, and a second tracker, reaching the
// same file by a symlink or hard link, is refused. The locks bind
// cooperating programs only; a plain write(2) by another program is not
// stopped (it is caught by the stamp when no tracker runs).
//
// # Order of writes
//
// A write holds its byte range (rangeLock) from the log append until the
// disk write completes, so any two overlapping writes reach the log and the
// disk in the same order; writes that don't overlap run at once. Within a
// write, the log append and the disk write run concurrently (measured: each
// is a copy into the page cache, and on two cores doing them in turn costs
// 10-15%); the write is acknowledged after both.
//
// Rotation: the successor logs are created (and fsynced) first, then guest
// writes are held off only while the tracker swaps the logs of every disk
// (no I/O in that window), then the sealed logs are closed and fsynced
// while the guest runs on. Every write acknowledged before the swap is in
// a sealed log and none after it, across all disks: the swap is the
// crash-consistent recovery point.
//
// # The activity log
//
// MS-HRL can't be walked past its last durable metadata block, so a crash
// loses the tail of the open log. DRBD's answer, adopted here: a small,
// durable set of disk extents that may hold writes no durable record
// covers yet. An extent enters the set, durably, before the first write
// into it; it may leave only once a checkpoint (a guest flush, a rotation,
// or room needed in the set) has made the log metadata and the disk data of
// every write into it durable. Writes into extents already in the set cost
// nothing extra, so a hot working set seldom updates it; a miss right after
// the previous extent also adds the next three, so a streaming write pays
// one update per 32 MiB.
//
// Its reach is 2040 extents of 8 MiB: 16 GiB, the most one record slot
// holds. An update is an fdatasync, and under heavy churn the device
// answers one in 40 to 150 ms, which the guest's write waits out: with 4
// GiB of reach, 50 MB/s of random writes over an 8 GiB disk updated the
// set on two writes in five and the guest's p99 was 55 ms; covering the
// disk, the set fills once and p99 is 2 ms. The price is the recovery
// after a crash: up to 16 GiB re-read and logged again, still far less
// than a resync.
//
// The tracker also asks the kernel to write the disk's and the log's dirty
// pages out every 8 MiB written (sync_file_range, in the background), so a
// checkpoint's fsyncs find little to write and no burst queues in front of
// an activity-log update.
//
// File layout: two 16 KiB slots; a record goes into the slot its
// generation's parity picks, so the newest durable record is never
// overwritten, and a reader takes the valid slot with the highest
// generation. Slot, little-endian:
//
//	0   8  magic "asr-al\0\x01"
//	8   4  CRC-32C of bytes 16 to the end of the slot
//	16  8  generation
//	24  8  extent size in bytes
//	32  8  disk virtual size
//	40  4  number of extents n (at most 2040)
//	44 20  zero
//	64 8n  extent numbers (offset / extent size), ascending
//
// Recovery (Start, or Recover from `asr replicate` when no tracker runs;
// both before any guest I/O): every log left open (EOLLocation 0) is sealed
// at the durable prefix its header names (hrl.Seal), and a new sealed log
// holds the current content of every extent in the activity log, read from
// the quiescent disk. Any write the lost tails held lies in those extents,
// so replaying the chain gives exactly the disk: no resync. A log whose
// header fails its checksum, or an open log with no activity log, can't be
// recovered that way: the disk is then marked for a full resync.
//
// A disk modified after the crash by something else would escape the
// activity log. Recovery compares the disk's mtime with the newest moment
// the tracker accounted for (the open logs' and activity log's mtimes) and
// leaves the untracked marker when the disk is more than 2 s younger.
//
// # When logging can't go on: the dirty map
//
// The VM's I/O is the production system; replication is secondary. When a
// log can't be written or sealed, the logs waiting for a disk pass half its
// size, or the file system holding them falls under the free-space reserve
// (Options.MinFree, 256 MiB), the tracker stops logging that disk and keeps
// serving it. From then on a bitmap of 64 KiB granules (the resync block
// size) records which regions change; it starts with every granule the
// dropped logs wrote (each log's written map), and is persisted
// (temp file, fsync, rename) at once and before any later guest flush is
// acknowledged. The activity log stays in force, so a crash adds its
// extents to the map: the map may over-state what changed, never
// under-state it. The replicate cycle sees the map and sends the VM to
// ResyncRequired with the map's reason; `asr status` shows it at once.
//
// Layout of <disk>.asr-dirty: a 4096-byte header, then the bitmap as
// little-endian uint64 words (granule g is bit g%64 of word g/64):
//
//	0   8  magic "asr-dm\0\x01"
//	8   4  CRC-32C of every byte from 16 to the end of the file
//	16  8  granule size (65536)
//	24  8  disk virtual size
//	32  8  FromSeq: logs numbered FromSeq and later are not in the chain
//	40  4  reason length r
//	64  r  reason, UTF-8
//
// Logs before FromSeq stay valid: the resync may apply them, then compare
// the marked regions.
//
// # Trim and write-zeroes
//
// MS-HRL defines only writes. A trim is acknowledged without touching the
// disk (NBD lets a server ignore it, and then disk and log agree for
// free). Write-zeroes writes the zeroes to the disk and logs them as
// ordinary write entries, so the replica receives them too.
package tracker
