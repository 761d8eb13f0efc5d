package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/vault"
)

func newVMCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "vm", Short: "How a VM runs at the recovery site"}
	c.AddCommand(newVMSetCmd(g))
	return c
}

func newVMSetCmd(g *globals) *cobra.Command {
	var m vault.Machine
	c := &cobra.Command{
		Use:   "set VM [--memory MIB] [--cpus N] [--network NAME] ...",
		Short: "Set a VM's memory, CPUs, network and host commands at the recovery site",
		Long: `Set how a VM runs when it fails over: memory, CPUs and network for the
libvirt driver's domain (and the ARM template: --size, and --network as a
subnet ID), the network of a test failover, a kernel to boot directly, and
per-VM overrides of the host.* commands. Only the flags given change; an
empty value ("") clears one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkVMs(args); err != nil {
				return err
			}
			if m.MemoryMiB < 0 || m.CPUs < 0 {
				return usageError{fmt.Errorf("--memory and --cpus are zero (the driver's default) or more")}
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			lock, err := e.Vault.LockVM(args[0])
			if err != nil {
				return err
			}
			defer lock.Unlock()
			var out vault.Machine
			err = e.Vault.Update(func(tx *vault.Tx) error {
				it, err := tx.Item(args[0])
				if err != nil {
					return err
				}
				if it.Machine == nil {
					it.Machine = &vault.Machine{}
				}
				f := c.Flags()
				set := func(name string, dst *string, v string) {
					if f.Changed(name) {
						*dst = v
					}
				}
				if f.Changed("memory") {
					it.Machine.MemoryMiB = m.MemoryMiB
				}
				if f.Changed("cpus") {
					it.Machine.CPUs = m.CPUs
				}
				set("network", &it.Machine.Network, m.Network)
				set("test-network", &it.Machine.TestNetwork, m.TestNetwork)
				set("size", &it.Machine.Size, m.Size)
				set("kernel", &it.Machine.Kernel, m.Kernel)
				set("initrd", &it.Machine.Initrd, m.Initrd)
				set("cmdline", &it.Machine.Cmdline, m.Cmdline)
				set("driver", &it.Machine.Driver, m.Driver)
				set("shutdown", &it.Machine.Shutdown, m.Shutdown)
				set("start", &it.Machine.Start, m.Start)
				set("freeze", &it.Machine.Freeze, m.Freeze)
				set("thaw", &it.Machine.Thaw, m.Thaw)
				out = *it.Machine
				return tx.PutItem(it)
			})
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(out)
			}
			g.say("%s: memory %d MiB, %d CPUs, network %q, test network %q", args[0], out.MemoryMiB, out.CPUs, out.Network, out.TestNetwork)
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&m.MemoryMiB, "memory", 0, "memory in MiB (0: the driver's default)")
	f.IntVar(&m.CPUs, "cpus", 0, "virtual CPUs (0: the driver's default)")
	f.StringVar(&m.Network, "network", "", "network to attach (libvirt network name; Azure subnet ID)")
	f.StringVar(&m.TestNetwork, "test-network", "", "network of a test failover (default: none)")
	f.StringVar(&m.Size, "size", "", "Azure VM size for the ARM template (default "+"Standard_B2s"+")")
	f.StringVar(&m.Kernel, "kernel", "", "kernel to boot directly (libvirt)")
	f.StringVar(&m.Initrd, "initrd", "", "initramfs for --kernel")
	f.StringVar(&m.Cmdline, "cmdline", "", "kernel command line for --kernel")
	f.StringVar(&m.Driver, "driver", "", "host driver for this VM: command, libvirt or none")
	f.StringVar(&m.Shutdown, "shutdown", "", "shutdown command template for this VM")
	f.StringVar(&m.Start, "start", "", "start command template for this VM")
	f.StringVar(&m.Freeze, "freeze", "", "freeze command template for this VM")
	f.StringVar(&m.Thaw, "thaw", "", "thaw command template for this VM")
	return c
}
