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
	Sealed map[string]Sealed `json:"sealed,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// ServeControl answers requests on l until l is closed. The one request is
// "rotate", answered with the sealed logs as one JSON line.
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
				sealed, err := t.Rotate()
				r.Sealed = sealed
				if err != nil {
					r.Error = err.Error()
				}
			default:
				r.Error = fmt.Sprintf("unknown request %q", strings.TrimSpace(line))
			}
			json.NewEncoder(c).Encode(r)
		}()
	}
}

// RequestRotate asks the tracker listening on socket to rotate its logs.
func RequestRotate(ctx context.Context, socket string) (map[string]Sealed, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("tracker control socket %s: %w; is `asr track` running?", socket, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(time.Minute))
	}
	if _, err := c.Write([]byte("rotate\n")); err != nil {
		return nil, fmt.Errorf("tracker control socket %s: %w", socket, err)
	}
	var r reply
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		return nil, fmt.Errorf("tracker control socket %s: reply: %w", socket, err)
	}
	if r.Error != "" {
		return nil, errors.New("tracker: " + r.Error)
	}
	return r.Sealed, nil
}
