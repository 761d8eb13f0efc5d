package replica

import (
	"errors"

	"github.com/asr-project/asr/replica/catalog"
)

// Sentinel errors; the command line maps them to exit codes.
var (
	// ErrExists: the VM is already protected, or its replica already exists.
	ErrExists = errors.New("already exists")
	// ErrNotFound: an unknown VM, disk file or recovery point.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: bad input such as a malformed name or policy value.
	ErrInvalid = errors.New("invalid input")
	// ErrBadData: a source disk, log or target object that cannot be read
	// as what it claims.
	ErrBadData = catalog.ErrBadData
	// ErrTarget: the target cannot take the replica (unwritable, too small).
	ErrTarget = errors.New("target cannot be used")
	// ErrMismatch: a verification found different bytes.
	ErrMismatch = errors.New("verification failed")
	// ErrMoved: another site failed the VM over; this one must not
	// replicate it any more.
	ErrMoved = errors.New("failed over elsewhere")
	// ErrResync: the item needs a resync before it can replicate again.
	ErrResync = errors.New("resync required")
	// ErrInUse: a record still referred to, such as a policy that
	// protected VMs use; the message names what uses it.
	ErrInUse = errors.New("in use")
	// ErrLocal: a local folder or file asr must use is missing, not a
	// folder, read-only, full, or its path is too long.
	ErrLocal = errors.New("local path unusable")
)
