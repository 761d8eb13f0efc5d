package failover

import (
	"os"

	"golang.org/x/sys/unix"
)

// inUse reports whether a process holds a lock on any byte of the file:
// qemu locks the images it has open (its image locking, OFD locks on
// bytes past 100), so a VM running on the disk is seen whoever started it.
func inUse(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type != unix.F_UNLCK
}
