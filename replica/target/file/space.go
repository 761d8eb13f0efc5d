package file

import (
	"context"

	"golang.org/x/sys/unix"
)

// FreeSpace is the bytes available to this process on the target's file
// system; enable-protection checks it before a copy starts.
func (t *Target) FreeSpace(ctx context.Context) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(t.dir, &st); err != nil {
		return 0, ioErr("statfs", t.dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}
