package qemunbd

import "errors"

// Sentinel errors, returned wrapped in a message that names the image and
// says what to do.
var (
	// ErrNotInstalled: qemu-nbd is not on $PATH. It comes with qemu-utils
	// (Debian, Ubuntu) or qemu-img (Fedora, RHEL).
	ErrNotInstalled = errors.New("qemu-nbd is not installed")
	// ErrExited: the child exited without being asked to, before it
	// accepted a connection (Start) or while serving (Err); or it failed
	// while stopping (exit status not 0). The message has its exit status
	// and the last of what it wrote to stderr.
	ErrExited = errors.New("qemu-nbd exited")
	// ErrNotReady: the child did not answer on its socket within 10 s of
	// starting; Start stopped it.
	ErrNotReady = errors.New("qemu-nbd did not become ready")
	// ErrKilled: the child did not exit within the grace after SIGTERM
	// (Stop, or its context ending) and was killed with SIGKILL. Image
	// metadata qemu still held in memory is lost; check the image with
	// `qemu-img check`.
	ErrKilled = errors.New("qemu-nbd had to be killed")
	// ErrNotRunning: Check on a server whose child has exited.
	ErrNotRunning = errors.New("qemu-nbd is not running")
	// ErrUnresponsive: Check got no NBD greeting in time, or a wrong one.
	ErrUnresponsive = errors.New("qemu-nbd does not answer")
	// ErrUnknownFormat: Probe found no signature it knows. The file may be
	// raw; only the caller can say so (by name or --format), never Probe.
	ErrUnknownFormat = errors.New("unknown image format")
	// ErrAmbiguous: Probe found the signatures of two formats; the
	// operator must name the format (--format).
	ErrAmbiguous = errors.New("ambiguous image format")
)
