// Package file is the target backend for a directory on the secondary site:
// a local disk or a mount. It registers the URL scheme "file"; the URL
// must carry an absolute path (file:///srv/asr, file:/srv/asr or
// file://localhost/srv/asr). file://relative is refused, because its
// "relative" is a host name by RFC 8089 and because cron runs asr from
// another working directory than the operator's shell.
//
// # Layout 1
//
//	asr-target.json                {"layout":1}; New refuses other versions, and
//	                               refuses a non-empty directory without it
//	disks/<disk>.vhd               sparse fixed VHD: virtual disk, then the 512-byte footer
//	disks/<disk>.lock              flock'd by every disk operation (shared or exclusive)
//	disks/<disk>.snap/<seq>-<id>-<snapshot>/index   pre-image index (see index.go);
//	                               its header holds the snapshot's virtual size
//	disks/<disk>.snap/<seq>-<id>-<snapshot>/pre     sparse file of that size holding pre-images
//	objects/<key>                  one file per object; '/' in a key makes folders
//	.asr-tmp-*, .asr-del-*         work files: being written, or renamed away to be removed
//
// Disk and snapshot names are '/'-separated segments of [A-Za-z0-9._-], no
// segment empty or starting with '.', at most 200 bytes with each '/'
// written as "%2F" (so "vm1/disk0" is the file disks/vm1%2Fdisk0.vhd).
// seq orders snapshots; id is random so that a snapshot directory name is
// never reused, which lets a cached index be trusted while its file size is
// unchanged. Object keys are 1-1024 bytes of UTF-8 with no empty, "." or
// ".." segment and no leading '/'; a key cannot also be the folder of
// another key here ("a" and "a/b"): the second put is ErrInvalid.
//
// # Snapshots: copy-on-write pre-images
//
// The file system here (ext4) has no reflink, so a snapshot is taken for
// free (an empty index and an all-hole pre file) and the disk stays the live
// copy. Before a write overwrites a granule the newest snapshot does not
// hold yet, the granule's current content is saved into that snapshot's pre
// file at the same offset (a punched hole when it is all zero) and recorded
// in its index. Snapshot S reads granule g from the oldest snapshot at or
// after S that holds g, else from the disk: a granule no later snapshot
// saved was not written since S. Deleting the oldest snapshot drops it;
// deleting any other first copies its pre-images into the next older
// snapshot where that one lacks them (a granule the older lacks was not
// written between the two, so the newer one's pre-image is its content).
// Ranges of a snapshot come from SEEK_DATA on the files each granule is read
// from, so they are exact to file-system blocks. Where the file system
// shares blocks (XFS, btrfs), a pre-image is saved with FICLONERANGE: the
// pre file takes the disk's blocks as they are and the disk's write that
// follows gets new ones, so nothing is read or copied (redirect-on-write
// done by the file system); elsewhere it is read and written. Likewise
// WriteSnapshotFile (clone.go), which makes a failover's recovery disks,
// hands the snapshot's blocks to a local file with FICLONERANGE, else with
// copy_file_range.
//
// Why pre-images and not new data in per-point extent files
// (redirect-on-write): without shared blocks, any scheme that keeps a
// point's old bytes while taking new ones writes each changed granule twice.
// Copy-on-write writes the pre-image and the new data in the cycle;
// redirect-on-write writes the new data once in the cycle and again when
// retention merges the oldest point into the base. Under steady churn every
// cycle also retires a point, so the device does the same work per cycle
// either way, and a cycle can reach at most half the speed of writing the
// same bytes into a plain file (measured on ext4: 0.37-0.41 of it with the
// replica in the page cache, 0.19 without; on XFS with reflink 0.47-0.49;
// BenchmarkApplyCycle, `bash .ci/bench apply`). Redirect-on-write would only
// move half of that work past the point's recording, at the price of a disk
// file that is no longer the newest replica and of reads that look up every
// newer point's extents. Pre-images keep the disk file whole and readable by
// qemu-img and by failover at file speed, and a point's read is the disk's
// plus the granules later points saved, within a few percent of a plain
// file. Their cost is cut where it can be: a never-written granule needs
// none, syncs are per 32 MiB batch, and where the file system shares blocks
// the pre-image is a clone. Copies run one at a time on purpose: eight at
// once made a cold replica's cycle 1.8x faster, but under 50 MB/s of guest
// churn (the replica then in the page cache) cycles took as long, and more
// of the device went to replication while the guest waited (its worst
// write 404 ms against 131 ms in one 90 s run each; runs vary). The VM's
// I/O comes first. (Batches of 64 or 128 MiB gained nothing with one
// copier.)
//
// The granule is 64 KiB: a first small write after a snapshot costs one
// 64 KiB read and write more (the log shipper's writes are mostly 4 KiB to
// 1 MiB, and one 4 MiB write saves 64 granules as one index record), while
// the index bitmap stays small (2 MiB per TiB of disk in memory, 16 bytes
// per run on disk). It divides target.SizeUnit, so granules never cross the
// end of a disk, and is a multiple of 4 KiB file-system blocks, so
// pre-image holes are real holes.
//
// # Crash safety
//
// The invariant: a granule is overwritten on the disk only after its
// pre-image is durable in the newest snapshot. A preserving batch
// (WriteBatch; WritePages is a batch of one) runs in this order, under the
// disk's exclusive lock: (1) copy every granule the batch's writes touch
// and the snapshot lacks into the pre file, (2) fsync it, (3) append one
// 16-byte record per run of granules to the index, each with its own
// CRC-32C, (4) fdatasync the index, (5) write the disk, (6) fdatasync it,
// and only then return nil. A cycle sends 32 MiB batches, so a GiB costs
// about a hundred syncs instead of three per write. A kill -9 or power cut:
//   - before (4) completes: the record is missing or torn; readers skip a
//     torn tail (and the next exclusive user cuts it off), so S reads those
//     granules from the disk, which (5) has not touched. Bytes that (1) left
//     in the pre file are never read without a record, and equal the disk
//     anyway; a later save rewrites or punches them.
//   - after (4): the record and the data it vouches for are durable; S
//     reads the pre-image whatever (5) did. The write was not acknowledged,
//     so the caller retries it (WritePages is idempotent).
//
// A record with a bad checksum that is not all zero and is followed by a
// good one is damage, not a torn append: reads fail with ErrCorrupt
// instead of returning wrong bytes. A merge syncs each batch of copied
// pre-images before indexing it, so an interrupted DeleteSnapshot leaves
// both snapshots readable and the next call finishes it. Creating a
// snapshot, a disk or a copy writes a work file or directory, syncs it,
// renames it into place and syncs the parent; deleting renames away first.
// So every name is either complete or absent.
//
// # Resizing
//
// ResizeDisk grows the disk file in place; the disk's size is always its
// file length minus the footer. It clears the old footer and syncs, then
// extends the file, then writes the new footer and syncs (resize.go), so
// a crash leaves the old or the new size, the data intact, the new region
// zero, and at worst a missing footer that the retried call writes. A
// snapshot keeps the size in its index header: reads, ranges and copies of
// it stop there, a preserving write saves only the granules below the
// newest snapshot's size, and a merge gives an older, smaller snapshot only
// the granules below its own size. A granule of an older snapshot is below
// every later one's size (disks never shrink), so the read chain holds.
//
// # Concurrency
//
// Every disk operation takes the disk's lock: an in-process RWMutex plus a
// flock on a fresh descriptor of disks/<disk>.lock, so goroutines and
// processes (two asr runs on one site, or a recovery site reading over a
// mount while the primary writes) exclude each other alike. Reads and
// writes to a disk without snapshots share it, so writes to different
// ranges run in parallel; snapshot-preserving writes, Snapshot,
// DeleteSnapshot, CreateDisk, ResizeDisk and DeleteDisk take it
// exclusively.
// CopyFromSnapshot takes the source's shared lock per 4 MiB chunk, so the
// source keeps replicating during a long copy.
package file
