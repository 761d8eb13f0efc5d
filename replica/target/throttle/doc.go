// Package throttle limits a target's bandwidth by wrapping it, the way
// restic wraps its backends: no backend carries limiting code of its own,
// and the wrapper passes the same conformance suite as what it wraps.
//
// Limit meters WritePages and ReadAt in bytes per second with a token
// bucket (golang.org/x/time/rate), one bucket for writes and one for reads
// so that a resync reading the replica does not eat the upload budget. The
// rate function is asked again before every chunk of every call, so a
// Schedule (work hours / other hours) takes effect at its boundary even in
// the middle of a long copy. A rate of 0 or less means unlimited.
//
// The bucket holds at most one second of traffic at the current rate
// (capped at target.MaxWrite), so a limit is never exceeded by more than
// one second's worth after an idle spell; a call larger than the bucket
// waits for its bytes in bucket-sized chunks before it runs. Everything
// else (disk and object metadata, ResizeDisk, snapshots, server-side
// copies) passes through unmetered, and Local is the wrapped target's.
package throttle
