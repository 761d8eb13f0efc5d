package cmd

import (
	"context"
	"errors"

	"github.com/asr-project/asr/failover"
	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/file"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// Exit codes. This is the one place errors become codes; keep exitCodeHelp
// in step.
const (
	exitOK        = 0
	exitFailure   = 1  // anything not listed below
	exitUsage     = 2  // bad flags, arguments or config
	exitNotFound  = 3  // unknown VM, policy, point, job or disk
	exitNoSite    = 4  // no state file: run asr init
	exitLocked    = 5  // another asr process holds the site or VM
	exitBadData   = 6  // malformed VHD, corrupt or unclosed log, broken chain
	exitTarget    = 7  // target unreachable, unwritable or full
	exitAuth      = 8  // target refused the credentials
	exitExists    = 9  // already exists (site, VM, policy) or still in use (policy)
	exitState     = 10 // state file damaged, unreadable, unwritable or newer
	exitMismatch  = 11 // verification found different bytes
	exitLocal     = 12 // a local folder or file can't be used
	exitNotNow    = 13 // the VM's state does not allow it (a failover step)
	exitCancelled = 130
)

const exitCodeHelp = `Exit codes:
  0    success
  1    failure not listed below
  2    bad flags, arguments or configuration
  3    not found: unknown VM, policy, recovery point, job or disk
  4    no site here: run asr init --site NAME (or pass --state)
  5    locked: another asr process is working on this site or VM
  6    bad data: malformed VHD, corrupt or unclosed .hrl log, broken chain
  7    target unreachable, unwritable, out of space, or missing a replica
  8    target refused the credentials
  9    already exists or in use: site, protected VM, policy, a file export
       won't replace, or a policy protected VMs still use
  10   state file damaged, not a state file, unreadable, read-only, or newer
  11   verification failed: bytes differ
  12   local folder or file unusable: missing, not a folder, read-only, full,
       or a path too long (export folder, socket folder)
  13   not in this state: the VM's failover state does not allow the command;
       the message says what state it is in and what to run instead
  130  cancelled (Ctrl-C or SIGTERM)`

// usageError marks bad flags, arguments or configuration.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// errReported is returned by a command that already printed its failure
// (for example JSON output of a corrupt file) and only needs the exit code.
var errReported = errors.New("reported")

// reported carries an exit code for an error already printed.
type reportedError struct{ code int }

func (reportedError) Error() string   { return "reported" }
func (reportedError) Is(t error) bool { return t == errReported }

func exitCode(err error) int {
	var rep reportedError
	var usage usageError
	var format *vhd.FormatError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &rep):
		return rep.code
	case errors.As(err, &usage):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitCancelled
	case errors.Is(err, failover.ErrState), errors.Is(err, replica.ErrMoved):
		return exitNotNow
	case errors.Is(err, vault.ErrLocked):
		return exitLocked
	case errors.Is(err, vault.ErrNoSite):
		return exitNoSite
	case errors.Is(err, vault.ErrInvalid):
		return exitUsage
	case errors.Is(err, vault.ErrSchema), errors.Is(err, vault.ErrCorrupt), errors.Is(err, vault.ErrAccess):
		return exitState
	case errors.Is(err, vault.ErrExists), errors.Is(err, replica.ErrExists), errors.Is(err, replica.ErrInUse):
		return exitExists
	case errors.Is(err, replica.ErrMismatch):
		return exitMismatch
	case errors.Is(err, replica.ErrInvalid):
		return exitUsage
	case errors.As(err, &format), errors.Is(err, hrl.ErrCorrupt), errors.Is(err, hrl.ErrTruncated),
		errors.Is(err, hrl.ErrNotClosed), errors.Is(err, hrl.ErrChainBroken), errors.Is(err, replica.ErrBadData),
		errors.Is(err, replica.ErrResync):
		return exitBadData
	case errors.Is(err, vault.ErrNotFound), errors.Is(err, replica.ErrNotFound):
		return exitNotFound
	case errors.Is(err, replica.ErrLocal):
		return exitLocal
	case errors.Is(err, target.ErrAuth):
		return exitAuth
	case errors.Is(err, target.ErrNotFound), errors.Is(err, file.ErrCorrupt), errors.Is(err, file.ErrLayout),
		errors.Is(err, target.ErrUnavailable), errors.Is(err, target.ErrNoSpace),
		errors.Is(err, target.ErrInvalid), errors.Is(err, target.ErrUnknownScheme), errors.Is(err, replica.ErrTarget):
		return exitTarget
	}
	return exitFailure
}
