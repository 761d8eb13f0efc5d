package chunker

import "errors"

// Sentinel errors. Every error this package returns wraps exactly one of
// them with %w, and its message names the field or argument and, for
// encoded maps, the byte offset at which the check failed.
var (
	// ErrCorrupt: an encoded map is truncated, has a bad magic, a failed
	// checksum or a field that contradicts the others. Rebuild the map from
	// its disk; never resync against it.
	ErrCorrupt = errors.New("chunker: corrupt checksum map")

	// ErrVersion: an encoded map has a format version this build cannot
	// read. Upgrade asr, or rebuild the map with this build.
	ErrVersion = errors.New("chunker: unsupported checksum map version")

	// ErrUnknownHash: a map names a hash id this build does not know.
	// Upgrade asr, or rebuild the map with this build.
	ErrUnknownHash = errors.New("chunker: unknown hash id")

	// ErrMismatch: two maps (or a map and a disk) differ in block size,
	// disk size or hash, so blocks cannot be compared one to one. Rebuild
	// one side with the other's geometry, or resize the replica first.
	ErrMismatch = errors.New("chunker: checksum maps are not comparable")

	// ErrArgument: a caller passed an invalid block size, disk size or a
	// Map value not made by Build or Unmarshal.
	ErrArgument = errors.New("chunker: invalid argument")

	// ErrShortRead: the disk reader returned fewer bytes than the size it
	// was said to have. Check the disk size passed in.
	ErrShortRead = errors.New("chunker: short read")
)
