package cmd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/failover"
	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/replica/tracker"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

func newDemoCmd(g *globals) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "demo [--dir DIR]",
		Short: "Protect a small two-disk VM to a directory target, replicate, export, test-fail over and verify",
		Long: `Run the whole pipeline with nothing to set up: make a VM with two disks
(a fixed VHD and a raw image) in DIR (default: a new temporary directory),
protect it to the file target DIR/target, write to the disks through the
write tracker, replicate, export the latest recovery point and check it
byte for byte against the disks, run a test failover (its disks checked
the same way; no VM is started) and clean it up, then print the status
table. The demo
keeps its own state file in DIR and never touches the site's.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runDemo(c.Context(), g, dir)
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory for the demo's disks, target and state (default: new temp dir)")
	return c
}

func runDemo(ctx context.Context, g *globals, dir string) error {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "asr-demo-"); err != nil {
			return err
		}
	}
	vmDir := filepath.Join(dir, "vm")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		return err
	}
	g.State = filepath.Join(dir, "site.db")
	if _, err := os.Stat(g.State); err == nil {
		return usageError{fmt.Errorf("%s already holds a demo; pass an empty --dir", dir)}
	}
	disks := []string{filepath.Join(vmDir, "os.vhd"), filepath.Join(vmDir, "data.raw")}
	if err := makeDemoDisks(disks); err != nil {
		return err
	}
	g.say("demo in %s", dir)
	if err := initSite(g, "demo"); err != nil {
		return err
	}
	e, err := g.engine()
	if err != nil {
		return err
	}
	req := replica.Protect{VM: "demo-vm", Disks: disks, Target: "file://" + filepath.Join(dir, "target")}
	if _, err := e.EnableProtection(ctx, req); err != nil {
		return err
	}
	if err := demoWrites(e, req.VM); err != nil {
		return err
	}
	if _, err := e.Replicate(ctx, []string{req.VM}); err != nil {
		return err
	}
	t, err := g.openTarget(ctx, req.Target)
	if err != nil {
		return err
	}
	defer t.Close()
	_, files, err := failover.Export(ctx, t, req.VM, "latest", filepath.Join(dir, "export"), failover.ExportOptions{})
	if err != nil {
		return err
	}
	for i, f := range files {
		if err := failover.Compare(disks[i], f); err != nil {
			return err
		}
		g.say("%s: verified %s equals %s byte for byte", req.VM, f, disks[i])
	}
	if err := demoTestFailover(ctx, e, req.VM, dir, disks); err != nil {
		return err
	}
	g.say("%s: test failover made %s-test's disks from the latest point, equal to the disks; cleaned up", req.VM, req.VM)
	if g.json() {
		st, err := e.Statuses(nil)
		if err != nil {
			return err
		}
		return g.printJSON(demoResult{Dir: dir, State: g.State, VM: req.VM, Disks: disks, Exported: files, Status: statusOut(st), Remove: "rm -rf " + dir})
	}
	if err := runStatus(g, nil); err != nil {
		return err
	}
	g.say("the demo's disks, target, state and export are in %s; look around with asr --state %s status, then remove it all with: rm -rf %s", dir, g.State, dir)
	return nil
}

// demoTestFailover runs a test failover with no host driver (the demo
// starts no VM, whatever the site's config says), checks its disks and
// cleans it up.
func demoTestFailover(ctx context.Context, e *replica.Engine, vm, dir string, disks []string) error {
	none := func(vault.Item) (host.Host, string, error) { h, err := host.New(host.Config{}); return h, "none", err }
	r := &failover.Runner{Engine: e, Host: none, Dir: filepath.Join(dir, "recovery")}
	res, err := r.Test(ctx, vm, "latest", "")
	if err != nil {
		return err
	}
	for i, f := range res.Disks {
		if err := failover.Compare(disks[i], f); err != nil {
			return err
		}
	}
	_, err = r.Cleanup(ctx, vm)
	return err
}

// demoResult is what demo -o json prints: one document.
type demoResult struct {
	Dir      string       `json:"dir"`
	State    string       `json:"state"`
	VM       string       `json:"vm"`
	Disks    []string     `json:"disks"`
	Exported []string     `json:"exported"`
	Status   []statusJSON `json:"status"`
	Remove   string       `json:"remove"`
}

// makeDemoDisks makes a 64 MiB fixed VHD and a 32 MiB raw image with
// scattered data and holes.
func makeDemoDisks(paths []string) error {
	r := rand.New(rand.NewPCG(1, 2))
	for i, p := range paths {
		size := int64(64-32*i) << 20
		var d *vhd.Disk
		var err error
		if filepath.Ext(p) == ".vhd" {
			d, err = vhd.CreateFixed(p, size)
		} else if err = os.WriteFile(p, nil, 0o644); err == nil {
			if err = os.Truncate(p, size); err == nil {
				d, err = vhd.OpenWritable(p)
			}
		}
		if err != nil {
			return err
		}
		if err := fillRandom(d, r, 24); err != nil {
			d.Close()
			return err
		}
		if err := d.Close(); err != nil {
			return err
		}
	}
	return nil
}

// fillRandom writes n random 64 KiB runs at random 4 KiB-aligned offsets.
func fillRandom(w interface {
	WriteAt([]byte, int64) (int, error)
	Size() int64
}, r *rand.Rand, n int) error {
	buf := make([]byte, 64<<10)
	for range n {
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		off := r.Int64N((w.Size()-int64(len(buf)))/4096) * 4096
		if _, err := w.WriteAt(buf, off); err != nil {
			return err
		}
	}
	return nil
}

// demoWrites plays a running VM: writes go through the tracker, which logs
// them, and a clean stop seals the logs for the next replicate.
func demoWrites(e *replica.Engine, vm string) error {
	tr, err := e.StartTracker(vm, 5*time.Second, tracker.Options{})
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, d := range tr.Disks() {
		if err := fillRandom(d, r, 16); err != nil {
			tr.Close()
			return err
		}
	}
	return tr.Close()
}
