package cmd

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/failover"
	"github.com/asr-project/asr/vault"
)

func newPointsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "points VM",
		Short: "List a VM's recovery points",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			var pts []vault.Point
			err = e.Vault.View(func(tx *vault.Tx) error {
				if _, err := tx.Item(args[0]); err != nil {
					return err
				}
				pts, err = tx.Points(args[0])
				return err
			})
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
				rows = append(rows, []string{p.ID, p.Time.Local().Format(time.DateTime), ago(p.Time, now), kind, bytesString(p.Bytes)})
			}
			g.table([]string{"POINT", "TIME", "AGE", "KIND", "SHIPPED"}, rows)
			return nil
		},
	}
	c.AddCommand(newPointsExportCmd(g))
	return c
}

func newPointsExportCmd(g *globals) *cobra.Command {
	var point, dir string
	var force bool
	c := &cobra.Command{
		Use:   "export VM [--point ID|latest] --dir DIR [--force]",
		Short: "Write each disk of a VM at a recovery point as a fixed VHD in DIR",
		Long: `Write each disk of a VM at a recovery point as a fixed VHD <disk>.vhd in DIR.
An existing file is never replaced unless --force is given, and a protected
disk of this site never, with --force or not. Each file is written as
<file>.partial and renamed when complete; killed, the next export reuses it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			var it vault.Item
			var protected []string
			err = e.Vault.View(func(tx *vault.Tx) error {
				if it, err = tx.Item(args[0]); err != nil {
					return err
				}
				items, err := tx.Items()
				for _, o := range items {
					for _, d := range o.Disks {
						protected = append(protected, d.Path)
					}
				}
				return err
			})
			if err != nil {
				return err
			}
			t, err := g.openTarget(c.Context(), it.Target)
			if err != nil {
				return err
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
	c.MarkFlagRequired("dir")
	return c
}
