package cmd

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/failover"
	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/vault"
)

func newPointsCmd(g *globals) *cobra.Command {
	var url string
	c := &cobra.Command{
		Use:   "points VM [--target URL]",
		Short: "List a VM's recovery points",
		Long: `List a VM's recovery points: from the state file at a primary, from the
target at a recovery site, and from --target URL with no state file at all.
FROM is the site that replicated each point: after a failback and
reprotect, or a reverse reprotect, one history holds both directions. A
point of the other direction exports with --target naming its target.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkVMs(args); err != nil {
				return err
			}
			pts, err := g.points(c, args[0], url)
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(pointsOut(pts))
			}
			now := time.Now()
			var rows [][]string
			for _, p := range pts {
				kind := "crash-consistent"
				if p.AppConsistent {
					kind = "app-consistent"
				}
				rows = append(rows, []string{p.ID, p.Time.Local().Format(time.DateTime), ago(p.Time, now), kind, bytesString(p.Bytes), cmp.Or(p.Site, "-")})
			}
			g.table([]string{"POINT", "TIME", "AGE", "KIND", "SHIPPED", "FROM"}, rows)
			return nil
		},
	}
	c.Flags().StringVar(&url, "target", "", "read the points from this target, without a state file")
	c.AddCommand(newPointsExportCmd(g))
	return c
}

// points lists a VM's points from the target when one is given or this is
// a recovery site, else from the state file.
func (g *globals) points(c *cobra.Command, vm, url string) ([]vault.Point, error) {
	if url == "" {
		v, err := g.openVault()
		if err != nil {
			return nil, err
		}
		var site vault.Site
		var pts []vault.Point
		own := false
		err = v.View(func(tx *vault.Tx) (err error) {
			if site, err = tx.Site(); err != nil {
				return err
			}
			it, err := tx.Item(vm)
			if err != nil {
				return err
			}
			// A VM this site protects itself (a reverse reprotect) keeps
			// both directions' points here.
			own = it.Target != site.Target
			pts, err = tx.Points(vm)
			return err
		})
		if err != nil || site.Role != vault.RoleRecovery || own {
			return pts, err
		}
		url = site.Target
	}
	t, err := g.openTarget(c.Context(), url)
	if err != nil {
		return nil, fmt.Errorf("open target %s: %w", url, err)
	}
	defer t.Close()
	if ok, err := catalog.HasManifest(c.Context(), t, vm); err != nil || !ok {
		return nil, errors.Join(err, fmt.Errorf("target %s holds no VM %s: %w", url, vm, replica.ErrNotFound))
	}
	return replica.TargetPoints(c.Context(), t, vm)
}

func newPointsExportCmd(g *globals) *cobra.Command {
	var point, dir, url string
	var force bool
	c := &cobra.Command{
		Use:   "export VM [--point ID|latest] --dir DIR [--force] [--target URL]",
		Short: "Write each disk of a VM at a recovery point as a fixed VHD in DIR",
		Long: `Write each disk of a VM at a recovery point as a fixed VHD <disk>.vhd in DIR.
An existing file is never replaced unless --force is given, and a protected
disk of this site never, with --force or not. Each file is written as
<file>.partial and renamed when complete; killed, the next export reuses it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkVMs(args); err != nil {
				return err
			}
			it := vault.Item{VM: args[0], Target: url}
			var protected []string
			if url == "" {
				v, err := g.openVault()
				if err != nil {
					return err
				}
				err = v.View(func(tx *vault.Tx) (err error) {
					if it, err = tx.Item(args[0]); err != nil {
						return err
					}
					protected, err = tx.SourceDisks()
					return err
				})
				if err != nil {
					return err
				}
			}
			t, err := g.openTarget(c.Context(), it.Target)
			if err != nil {
				return fmt.Errorf("open target %s: %w", it.Target, err)
			}
			defer t.Close()
			ev := &events{g: g}
			opt := failover.ExportOptions{Force: force, Protected: protected, Progress: func(disk string, done, total int64) {
				ev.Progress(it.VM, "export "+disk, done, total)
			}}
			p, files, err := failover.Export(c.Context(), t, it.VM, point, dir, opt)
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(map[string]any{"vm": it.VM, "point": p.ID, "time": p.Time.UTC(), "files": files})
			}
			for _, f := range files {
				ev.Event(it.VM, "exported "+f+" at point "+p.ID)
			}
			return nil
		},
	}
	c.Flags().StringVar(&point, "point", "latest", "recovery point ID, or latest")
	c.Flags().StringVar(&dir, "dir", "", "directory for the exported VHD files (required)")
	c.Flags().BoolVar(&force, "force", false, "replace existing files (never a protected disk)")
	c.Flags().StringVar(&url, "target", "", "read the point from this target, without a state file")
	c.MarkFlagRequired("dir")
	return c
}
