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

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/replica/tracker/nbd"
	"github.com/asr-project/asr/vault"
)

func newTrackCmd(g *globals) *cobra.Command {
	var sockDir string
	var minFreeMiB, maxLogMiB int64
	var libvirt, apply bool
	c := &cobra.Command{
		Use:   "track VM [--socket-dir DIR]",
		Short: "Serve a protected VM's disks over NBD and log every write (long-running)",
		Long: `Serve each disk of a protected VM over NBD on a Unix socket
DIR/<VM>-<disk>.sock (export name <disk>) and record every write in the
disk's .hrl log. Start the VM with the -drive arguments printed at start.
A disk in a format qemu serves (qcow2, VHDX, VMDK...) is written through a
qemu-nbd child of this process; if that child dies, the VM's I/O fails and
the disk goes to resync, naming why.
asr replicate asks this process to rotate its logs. SIGTERM or SIGINT
closes every log properly and exits 0. Run it under systemd.

With --libvirt it does not track: it prints the VM's libvirt domain with
each protected disk an NBD source on this command's sockets, and with
--apply defines it, keeping the original (asr untrack VM --libvirt
restores it). Run that once, then start asr-track@VM.service before
libvirt starts the domain.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if apply && !libvirt {
				return usageError{fmt.Errorf("--apply defines the libvirt domain: add --libvirt")}
			}
			if libvirt {
				dir, err := trackSocketDir(g, sockDir)
				if err != nil {
					return err
				}
				return wireLibvirt(c.Context(), g, args[0], dir, apply)
			}
			if maxLogMiB < 0 {
				return usageError{fmt.Errorf("--max-log-mib %d: give a size in MiB, or 0 for half the disk", maxLogMiB)}
			}
			return runTrack(c.Context(), g, args[0], sockDir, tracker.Options{MinFree: minFreeMiB << 20, MaxLogBytes: maxLogMiB << 20})
		},
	}
	c.Flags().StringVar(&sockDir, "socket-dir", "", "directory for the NBD sockets (default beside the state file)")
	c.Flags().BoolVar(&libvirt, "libvirt", false, "print the VM's libvirt domain with its disks on this command's NBD sockets, and exit")
	c.Flags().BoolVar(&apply, "apply", false, "with --libvirt: define that domain, keeping the original")
	c.Flags().Int64Var(&minFreeMiB, "min-free-mib", 256, "stop logging (the disks stay served; a resync follows) when their file system has fewer MiB free")
	c.Flags().Int64Var(&maxLogMiB, "max-log-mib", 0, "stop logging (a resync narrowed to the blocks written follows) when a disk's logs waiting to ship pass this many MiB (0: half the disk)")
	return c
}

// trackSocketDir is the folder of the NBD sockets: --socket-dir, or one
// beside the state file, made private.
func trackSocketDir(g *globals, sockDir string) (string, error) {
	if sockDir != "" {
		return filepath.Abs(sockDir)
	}
	e, err := g.engine()
	if err != nil {
		return "", err
	}
	sockDir = e.TrackDir()
	if err := os.MkdirAll(sockDir, 0o700); err != nil {
		return "", fmt.Errorf("socket folder %s: %w", sockDir, errors.Join(replica.ErrLocal, err))
	}
	return sockDir, nil
}

func runTrack(ctx context.Context, g *globals, vm, sockDir string, opt tracker.Options) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	if err := replica.CheckName("VM", vm); err != nil {
		return usageError{err}
	}
	var it vault.Item
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { it, err = tx.Item(vm); return }); err != nil {
		return err
	}
	if sockDir, err = trackSocketDir(g, sockDir); err != nil {
		return err
	}
	_, ctlPath := tracker.Paths(e.TrackDir(), vm)
	socks := []string{ctlPath}
	for _, d := range it.Disks {
		socks = append(socks, filepath.Join(sockDir, vm+"-"+d.Name+".sock"))
	}
	// Checked before the tracker starts, so a refusal leaves no empty log.
	if err := checkSocketDir(sockDir, socks); err != nil {
		return err
	}
	tr, err := e.StartTracker(vm, g.Timeout, opt)
	if err != nil {
		return err
	}
	defer tr.Close()

	ctl, err := listenUnix(ctlPath)
	if err != nil {
		return err
	}
	defer ctl.Close()
	go tracker.ServeControl(ctl, tr.Tracker)

	var servers []*nbd.Server
	started := trackJSON{VM: vm, Disks: []trackDiskJSON{}}
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
		drive := fmt.Sprintf("file=nbd+unix:///%s?socket=%s,format=raw,if=virtio,cache=none", d.Name, path)
		g.say("%s: disk %s: -drive %s", vm, d.Name, drive)
		started.Disks = append(started.Disks, trackDiskJSON{Name: d.Name, Socket: path, Drive: drive, Degraded: d.Stats().Degraded})
	}
	for _, d := range tr.Disks() {
		if why := d.Stats().Degraded; why != "" {
			g.say("%s: %s; the disk is served, but asr replicate will ask for a resync", vm, why)
		}
	}
	if g.json() {
		// One document, at start: what a VM's launcher needs.
		if err := g.printJSON(started); err != nil {
			return err
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

// maxSocketPath is sun_path's size less its terminating NUL.
const maxSocketPath = 107

// checkSocketDir says the sockets can be made: the folder exists, is a
// folder, takes new files, and no path is too long for a Unix socket.
func checkSocketDir(dir string, socks []string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("socket folder %s does not exist; create it or pass another --socket-dir: %w", dir, replica.ErrLocal)
	case err != nil:
		return fmt.Errorf("socket folder %s: %w", dir, errors.Join(replica.ErrLocal, err))
	case !st.IsDir():
		return fmt.Errorf("socket folder %s is not a folder; pass a folder as --socket-dir: %w", dir, replica.ErrLocal)
	}
	for _, p := range socks {
		if len(p) > maxSocketPath {
			return fmt.Errorf("socket path %s is %d bytes, a Unix socket allows %d; pass a shorter --socket-dir (or --state): %w", p, len(p), maxSocketPath, replica.ErrLocal)
		}
	}
	probe, err := os.CreateTemp(dir, ".asr-probe-*")
	if err != nil {
		return fmt.Errorf("socket folder %s is not writable: %w", dir, errors.Join(replica.ErrLocal, err))
	}
	probe.Close()
	return os.Remove(probe.Name())
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

// trackJSON is what asr track -o json prints once it serves the disks.
type trackJSON struct {
	VM    string          `json:"vm"`
	Disks []trackDiskJSON `json:"disks"`
}

type trackDiskJSON struct {
	Name     string `json:"name"`
	Socket   string `json:"socket"`
	Drive    string `json:"drive"` // qemu's -drive argument
	Degraded string `json:"degraded"`
}
