// Package qemunbd serves a disk image in a format asr does not write
// itself (qcow2 with its backing chain, VHDX, VMDK, VDI, QED, anything
// qemu opens) through qemu's own NBD server, qemu-nbd, run as a child of
// asr on a private Unix socket. asr's tracker puts its logging NBD front
// before it and forwards every request to it. The package also names an
// image's format by content (Probe), to choose qemu-nbd's --format.
//
// It owns the child's life and the probing rules; the NBD traffic itself
// belongs to the caller's client.
//
// # The child
//
// Start runs, with the image path made absolute:
//
//	qemu-nbd --format=F --socket=DIR/nbd.sock --export-name=disk --persistent
//	         --shared=8 --cache=writeback --aio=threads --discard=unmap
//	         [--read-only] /abs/path
//
// (With Options.BesideWriter, --read-only and --image-opts naming the file
// with file.locking=off instead of --format and the path: a read-only view
// of an image asr's own tracker writes, which qemu's locks would refuse.)
//
// and returns once the socket answers an NBD greeting (polled every 20 ms,
// for at most 10 s). If the child exits first, the error carries its exit
// status and the last 4 KiB of its stderr on one line, so qemu's own
// reason ("Failed to get \"write\" lock", "Image is not in qcow2 format")
// reaches the operator. Done is closed when the child exits, for whatever
// reason, and Err then says how: the tracker fails the VM's I/O and
// records why, rather than hanging on a dead socket.
//
// Stopping: Stop, or the context given to Start ending (Cmd.Cancel), sends
// SIGTERM to the child's process group; qemu-nbd then flushes the image
// and exits 0 (or dies of that SIGTERM if it arrives before its handler is
// installed); both are clean. After a grace of 5 s (Stop's timer, or the
// Cmd.WaitDelay for a cancelled context) the group gets SIGKILL and the
// error wraps ErrKilled. When the child has exited, but before it is
// reaped, whatever is left of its group is killed; signals are never sent
// after it is reaped, so a reused PID is never hit. Its socket and the
// socket directory Start made are removed before Done is closed.
//
// Dying with asr: the child leads its own process group (Setpgid) and has
// Pdeathsig SIGTERM, so when asr dies, even by SIGKILL, qemu-nbd is told
// and exits cleanly. Pdeathsig fires when the thread that forked the child
// ends, not the process, so the goroutine that starts and waits for the
// child keeps its OS thread locked for the child's life. A temporary
// socket directory is left behind then (empty: qemu removes its socket).
//
// # Decisions
//
//   - --cache=writeback, not none: qemu writes through the host page cache
//     and honours every flush (FLUSH, FUA) with fdatasync after writing its
//     own metadata (qcow2 L2 tables, refcounts). asr's tracker flushes
//     explicitly on the guest's flushes, rotations and checkpoints, so the
//     data is as durable as with cache=none at each point it relies on.
//     cache=none (O_DIRECT) would refuse images on file systems
//     without O_DIRECT (tmpfs before Linux 6.6, some FUSE and network
//     mounts) and differ from asr's own raw and VHD path, which also goes
//     through the page cache; its gain, not caching guest data twice,
//     does not outweigh that. --aio=threads follows (native AIO needs O_DIRECT).
//   - --discard=unmap: a guest's TRIM frees clusters in the image.
//   - --persistent and --shared=8: qemu-nbd otherwise exits when its
//     last client leaves; the tracker, Check and readers may be connected
//     at once. A ninth client waits unanswered, and Check reports that as
//     ErrUnresponsive.
//   - The path is absolute: qemu reads a "json:" or protocol prefix
//     ("nbd:", "ssh:") in a file name, which a name starting with "/"
//     can't have.
//   - The socket lives in a directory of its own, 0700: whoever can connect
//     can read and write the disk. A directory given in Options.Dir must
//     be this user's and closed to others, or Start refuses it.
//   - Check reads the greeting, then leaves with NBD_OPT_ABORT and reads
//     the ack: a client that just hangs up makes qemu-nbd (7.2) log
//     "option negotiation failed: Failed to read flags" to stderr, which
//     would crowd the 4 KiB kept to explain a crash.
//   - Locks are qemu's: a writable server holds the image's write lock, so
//     a second writer (another qemu-nbd, a VM, qemu-img) is refused, and
//     Start reports qemu's "Failed to get \"write\" lock". Read-only
//     servers share the image with each other but not with a writer.
//
// # Probing
//
// Probe reads the first 2048 bytes (as qemu does) and the last 512, and
// follows qemu's block drivers' probe functions:
//
//	qcow2  "QFI\xfb" at 0, version (big-endian u32 at 4) >= 2
//	qcow   "QFI\xfb" at 0, version 1
//	vhdx   "vhdxfile" at 0
//	vmdk   "KDMV" or "COWD" at 0, or a text descriptor: lines of '#'
//	       comments or spaces, then "version=1|2|3"; or text starting
//	       "# Disk DescriptorFile" (package vhd's rule)
//	vdi    0xbeda107f (little-endian) at 64, in a file of 512 bytes or more
//	qed    "QED\0" at 0, in a file of 64 bytes or more
//	vpc    "conectix" at 0 (dynamic and differencing VHDs), or in the
//	       last 512 bytes (every VHD's footer)
//
// Where it departs from qemu, on purpose:
//
//   - qemu takes the highest-scoring driver and, on a tie, the first;
//     Probe refuses two formats' signatures with ErrAmbiguous (a qcow2
//     whose last sector holds a VHD footer could be either) and asks for
//     --format.
//   - qemu finds a VHD only by "conectix" at 0, so to it a fixed VHD is
//     raw; Probe also looks at the footer, as package vhd does.
//   - Raw is never the answer: a raw disk holds whatever the guest wrote,
//     so "nothing recognised" is ErrUnknownFormat and the caller decides
//     raw by name or flag. For the same reason a disk known to be raw must
//     be reopened as raw, not probed again.
//   - Formats qemu probes that asr does not serve are not recognised:
//     bochs, cloop, dmg, parallels, and LUKS (a guest that encrypts a whole
//     raw disk writes that same header).
//
// VMDK descriptors name their extent files relative to themselves: serve
// the descriptor's path with the extents beside it.
package qemunbd
