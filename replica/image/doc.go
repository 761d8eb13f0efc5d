// Package image opens a VM's disk file whatever its format, as one Disk:
// VHD and raw natively (package vhd, asr's own reader and writer), every
// other format qemu knows (qcow2 with its backing chain, VHDX, VMDK, VDI,
// QED) through qemu's own block layer: a qemu-nbd child on a private socket
// (package qemunbd) reached with asr's NBD client.
//
// Decisions:
//   - qemu is the most trusted implementation of those formats on Linux and
//     already a dependency (qemu-img, qemu-io); asr does not write them
//     itself.
//   - The format is decided by content (qemunbd.Probe, qemu's probing rules
//     as the model), never by name alone, and an ambiguous file is refused;
//     --format says it explicitly. Raw is never guessed from content: it
//     needs a .raw or .img name or --format raw (package vhd's rules).
//   - Extents come from NBD block status (base:allocation): holes and
//     ranges known to read as zeros are neither read nor copied.
//   - A disk opened read-only is served without qemu's image locks, so
//     asr can copy, compare and verify a disk its own tracker is writing
//     (the logs account for what changes meanwhile). Protection still
//     refuses a disk another process holds: it tests the locks itself.
//   - The child's life is the Disk's: Close stops it. If it dies, every
//     later call fails with its exit status; nothing falls back silently.
package image
