// Package target defines where replicas live: the Target interface, its
// sentinel errors and the registry that opens a target from its URL.
//
// Backends live in subpackages (file, azblob) and register a URL scheme in
// their init function; the engine above (package replica) only ever sees a
// Target and never knows which backend it has. Every backend passes the one
// conformance suite in package targettest.
//
// A replica disk is a fixed VHD: Size bytes of virtual disk followed by the
// 512-byte VHD footer, Size a multiple of 1 MiB (the rule Azure page blobs
// impose). Methods address the virtual disk only; the backend owns the
// footer. A snapshot is a named, read-only, point-in-time image of one disk,
// with the size the disk had then: ResizeDisk grows a disk (never shrinks
// it) and leaves its snapshots as they were.
package target
