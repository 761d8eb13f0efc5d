package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/replica/image"
)

func newEnableCmd(g *globals) *cobra.Command {
	var req replica.Protect
	var format, domain string
	c := &cobra.Command{
		Use:   "enable-protection VM {--disk PATH [--disk PATH ...] | --libvirt[=DOMAIN]} --target URL [--policy NAME]",
		Short: "Protect a VM: copy its disks to the target and make the first recovery point",
		Long: `Protect a VM: check its disks and the target, record it, copy each disk to
the target (skipping unallocated and all-zero ranges) and make the first
recovery point.

With --libvirt the disks are the file disks of the libvirt domain of the
VM's name (or DOMAIN; host.uri names the connection, default
qemu:///system), and the domain is recorded for host control.

Targets: file:///PATH (a secondary-site directory) or azblob://ACCOUNT/CONTAINER.
Killed part way, the same command resumes the copy where it stopped; so
does the next asr replicate.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			req.VM = args[0]
			var err error
			if req.Format, err = image.ParseFormat(format); err != nil {
				return usageError{err}
			}
			if c.Flags().Changed("libvirt") {
				if req.Domain = domain; domain == "" {
					req.Domain = req.VM
				}
				if err := libvirtDisks(c.Context(), g, &req); err != nil {
					return err
				}
			}
			if len(req.Disks) == 0 {
				return usageError{fmt.Errorf("name the VM's disks with --disk, or take them from libvirt with --libvirt")}
			}
			return runEnable(c, g, req)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&req.Disks, "disk", nil, "a virtual disk of the VM (VHD, raw, qcow2, VHDX, VMDK...); repeat for each")
	f.StringVar(&req.Target, "target", "", "where the replica lives: file:///PATH or azblob://ACCOUNT/CONTAINER")
	f.StringVar(&req.Policy, "policy", "", "replication policy (default \"default\")")
	f.StringVar(&format, "format", "auto", "disk format: auto (by content; raw only for .raw/.img), vhd, raw, qcow2, vhdx, vmdk, vdi or qed (those through a qemu-nbd child)")
	f.StringVar(&domain, "libvirt", "", "take the disks from this libvirt domain (default: the VM's name) and record it for host control")
	f.Lookup("libvirt").NoOptDefVal = ""
	c.MarkFlagRequired("target")
	return c
}

// libvirtDisks adds the file disks of the request's libvirt domain.
func libvirtDisks(ctx context.Context, g *globals, req *replica.Protect) error {
	x, err := host.DumpXML(ctx, g.hostConfig(), req.Domain)
	if err != nil {
		return err
	}
	disks, err := host.DomainDisks(x)
	if err != nil {
		return fmt.Errorf("libvirt domain %s: %w", req.Domain, err)
	}
	for _, d := range disks {
		if d.Device != "disk" {
			continue // CD-ROMs and floppies are not the VM's data
		}
		if d.Type != "file" {
			return fmt.Errorf("libvirt domain %s: disk %s is a %s disk (%s); asr protects disk files only: %w", req.Domain, d.Target, d.Type, d.Source, replica.ErrInvalid)
		}
		req.Disks = append(req.Disks, d.Source)
	}
	return nil
}

func runEnable(c *cobra.Command, g *globals, req replica.Protect) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	job, err := e.EnableProtection(c.Context(), req)
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(jobOut(job))
	}
	g.say("%s: protected; %s copied in %s (job %d)", req.VM, bytesString(job.Bytes), job.Duration.Round(1e6), job.ID)
	return nil
}
