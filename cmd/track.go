package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/replica/tracker/nbd"
)

func newTrackCmd(g *globals) *cobra.Command {
	var sockDir string
	var minFreeMiB int64
	c := &cobra.Command{
		Use:   "track VM [--socket-dir DIR]",
		Short: "Serve a protected VM's disks over NBD and log every write (long-running)",
		Long: `Serve each disk of a protected VM over NBD on a Unix socket
DIR/<VM>-<disk>.sock (export name <disk>) and record every write in the
disk's .hrl log. Start the VM with the -drive arguments printed at start.
asr replicate asks this process to rotate its logs. SIGTERM or SIGINT
closes every log properly and exits 0. Run it under systemd.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runTrack(c.Context(), g, args[0], sockDir, minFreeMiB<<20)
		},
	}
	c.Flags().StringVar(&sockDir, "socket-dir", "", "directory for the NBD sockets (default beside the state file)")
	c.Flags().Int64Var(&minFreeMiB, "min-free-mib", 256, "stop logging (the disks stay served; a resync follows) when their file system has fewer MiB free")
	return c
}

func runTrack(ctx context.Context, g *globals, vm, sockDir string, minFree int64) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	tr, err := e.StartTracker(vm, g.Timeout, tracker.Options{MinFree: minFree})
	if err != nil {
		return err
	}
	defer tr.Close()
	if sockDir == "" {
		sockDir = e.TrackDir()
	}
	_, ctlPath := tracker.Paths(e.TrackDir(), vm)

	ctl, err := listenUnix(ctlPath)
	if err != nil {
		return err
	}
	defer ctl.Close()
	go tracker.ServeControl(ctl, tr.Tracker)

	var servers []*nbd.Server
	for _, d := range tr.Disks() {
		path := filepath.Join(sockDir, vm+"-"+d.Name+".sock")
		l, err := listenUnix(path)
		if err != nil {
			return err
		}
		defer os.Remove(path)
		s := &nbd.Server{Exports: map[string]nbd.Backend{d.Name: d}, MinBlock: 512, MaxRequest: 32 << 20}
		servers = append(servers, s)
		go s.Serve(l)
		g.say("%s: disk %s: -drive file=nbd+unix:///%s?socket=%s,format=raw,if=virtio,cache=none", vm, d.Name, d.Name, path)
	}
	for _, d := range tr.Disks() {
		if why := d.Stats().Degraded; why != "" {
			g.say("%s: %s; the disk is served, but asr replicate will ask for a resync", vm, why)
		}
	}
	g.say("%s: tracking %d disk(s); stop with SIGTERM", vm, len(servers))
	<-ctx.Done()

	stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Shutdown(stop))
	}
	errs = append(errs, tr.Close())
	for _, d := range tr.Disks() {
		s := d.Stats()
		g.say("%s: disk %s: %d writes, %d activity-log updates, %d checkpoints", vm, d.Name, s.Writes, s.ActivityLogUpdates, s.Checkpoints)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tracker for %s stopped uncleanly; the next replicate will resync: %w", vm, err)
	}
	g.say("%s: logs closed; tracker stopped", vm)
	return nil
}

// listenUnix listens on a Unix socket, replacing a stale socket file; the
// caller holds the lock that makes it stale rather than live.
func listenUnix(path string) (net.Listener, error) {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}
