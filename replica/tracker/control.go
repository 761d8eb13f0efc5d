package tracker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// Paths returns the lock file and control socket of a VM's tracker in dir.
func Paths(dir, vm string) (lock, socket string) {
	return filepath.Join(dir, vm+".lock"), filepath.Join(dir, vm+".sock")
}

type reply struct {
	Sealed  map[string]Sealed   `json:"sealed,omitempty"`
	Written map[string][]uint64 `json:"written,omitempty"`
	Error   string              `json:"error,omitempty"`
}

// ServeControl answers requests on l until l is closed. The requests are
// "rotate", "resume" and "written" (Rotate, Resume, Written), each
// answered as one JSON line.
func ServeControl(l net.Listener, t *Tracker) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			var r reply
			switch strings.TrimSpace(line) {
			case "rotate":
				r.Sealed, err = t.Rotate()
			case "resume":
				r.Sealed, err = t.Resume()
			case "written":
				r.Written = t.Written()
			default:
				r.Error = fmt.Sprintf("unknown request %q", strings.TrimSpace(line))
			}
			if err != nil {
				r.Error = err.Error()
			}
			json.NewEncoder(c).Encode(r)
		}()
	}
}

// RequestRotate asks the tracker listening on socket to rotate its logs.
func RequestRotate(ctx context.Context, socket string) (map[string]Sealed, error) {
	return request(ctx, socket, "rotate")
}

// RequestResume asks the tracker listening on socket to ready its disks
// for a resync (Tracker.Resume).
func RequestResume(ctx context.Context, socket string) (map[string]Sealed, error) {
	return request(ctx, socket, "resume")
}

// RequestWritten asks the tracker listening on socket which granules
// (of 64 KiB) of each disk were written since its last rotation.
func RequestWritten(ctx context.Context, socket string) (map[string][]uint64, error) {
	r, err := ask(ctx, socket, "written")
	return r.Written, err
}

func request(ctx context.Context, socket, what string) (map[string]Sealed, error) {
	r, err := ask(ctx, socket, what)
	return r.Sealed, err
}

func ask(ctx context.Context, socket, what string) (reply, error) {
	var r reply
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return r, fmt.Errorf("tracker control socket %s: %w; is `asr track` running?", socket, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(time.Minute))
	}
	if _, err := c.Write([]byte(what + "\n")); err != nil {
		return r, fmt.Errorf("tracker control socket %s: %w", socket, err)
	}
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		return r, fmt.Errorf("tracker control socket %s: reply: %w", socket, err)
	}
	if r.Error != "" {
		return r, errors.New("tracker: " + r.Error)
	}
	return r, nil
}
