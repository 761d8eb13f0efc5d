// Package targettest is the conformance suite every target.Target backend
// passes: the file backend with a temporary directory, the azblob backend
// with an Azurite container, and wrappers such as throttle.Limit around
// either.
//
// Run calls open once per subtest and closes what open returned when the
// subtest ends, so open may hand out a fresh store each time (a new
// t.TempDir) or new handles on one shared store (one Azurite container).
// Subtests run in parallel and every disk and object name carries a random
// per-Run tag, so several runs may share a container without clashing. The
// suite never lists objects outside its own prefix and never assumes that
// two handles from open see each other's data.
//
// Disks are 4 MiB (8 MiB where the MaxWrite rule needs room) so that a run
// against a local server takes a few seconds. Names use only [a-z0-9-], the
// characters every backend accepts.
//
// What the suite pins beyond the literal contract in target.go, because the
// engine relies on it:
//   - a zero-length WritePages is not tested (Azure refuses it, the file
//     backend accepts it; callers never send one);
//   - DeleteSnapshot of a missing snapshot on an existing disk succeeds;
//   - Snapshot, Snapshots, Ranges and ReadAt on a missing disk are
//     ErrNotFound; ReadAt of a missing snapshot is ErrNotFound;
//   - a disk made by CopyFromSnapshot has no snapshots and survives the
//     deletion of its source disk.
//   - after ResizeDisk a snapshot from before it refuses reads past its own
//     size with ErrInvalid, and a copy of it has its size, not the disk's;
//   - ResizeDisk to a size that is not a positive multiple of SizeUnit is
//     ErrInvalid even when it is larger.
package targettest
