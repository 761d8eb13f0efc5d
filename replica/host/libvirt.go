package host

import (
	"context"
	"encoding/xml"

	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// libvirt drives VMs through virsh.
type libvirt struct{ cfg Config }

// virsh runs one virsh command, bounded by the timeout, and returns its
// output.
func (l libvirt) virsh(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "virsh", append([]string{"-q", "-c", l.cfg.URI}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("virsh %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// state is the domain's state as virsh domstate says it; "" for a domain
// libvirt does not know.
func (l libvirt) state(ctx context.Context, name string) (string, error) {
	out, err := l.virsh(ctx, "domstate", name)
	if err != nil {
		if strings.Contains(out, "ailed to get domain") || strings.Contains(out, "Domain not found") {
			return "", nil
		}
		return "", err
	}
	return out, nil
}

func (l libvirt) Start(ctx context.Context, vm VM, isolated bool) error {
	if isolated {
		vm.Network = l.cfg.TestNetwork
	}
	st, err := l.state(ctx, vm.Name)
	if err != nil || st == "running" {
		return err
	}
	d := domainXML(vm)
	if st != "" {
		// The same domain again: libvirt matches it by UUID.
		if d.UUID, err = l.virsh(ctx, "domuuid", vm.Name); err != nil {
			return err
		}
	}
	data, err := xml.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(vm.Dir, vm.Name+".xml")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the domain of %s: %w", vm.Name, err)
	}
	// Defined again each time, so a changed disk list or kernel line
	// applies; define replaces the inactive configuration.
	if _, err := l.virsh(ctx, "define", path); err != nil {
		return err
	}
	_, err = l.virsh(ctx, "start", vm.Name)
	return err
}

func (l libvirt) Shutdown(ctx context.Context, vm VM) error {
	st, err := l.state(ctx, vm.Name)
	if err != nil || st == "" || st == "shut off" {
		return err
	}
	if _, err := l.virsh(ctx, "shutdown", vm.Name); err != nil {
		return err
	}
	for deadline := time.Now().Add(l.cfg.Timeout); time.Now().Before(deadline); {
		if st, err := l.state(ctx, vm.Name); err != nil || st == "" || st == "shut off" {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	// The guest did not go down by itself in time: pull the plug.
	if _, err := l.virsh(ctx, "destroy", vm.Name); err != nil {
		if st, serr := l.state(ctx, vm.Name); serr == nil && (st == "" || st == "shut off") {
			return nil
		}
		return err
	}
	return nil
}

func (l libvirt) Remove(ctx context.Context, vm VM) error {
	st, err := l.state(ctx, vm.Name)
	if err != nil || st == "" {
		return err
	}
	if st != "shut off" {
		if _, err := l.virsh(ctx, "destroy", vm.Name); err != nil {
			return err
		}
	}
	_, err = l.virsh(ctx, "undefine", vm.Name)
	return err
}

func (l libvirt) Freeze(ctx context.Context, vm VM) error {
	_, err := l.virsh(ctx, "domfsfreeze", vm.Name)
	return err
}

func (l libvirt) Thaw(ctx context.Context, vm VM) error {
	_, err := l.virsh(ctx, "domfsthaw", vm.Name)
	return err
}

// The domain XML, as much of libvirt's schema as asr writes.
type domain struct {
	XMLName xml.Name `xml:"domain"`
	Type    string   `xml:"type,attr"`
	Name    string   `xml:"name"`
	UUID    string   `xml:"uuid,omitempty"`
	Memory  struct {
		Unit  string `xml:"unit,attr"`
		Value int    `xml:",chardata"`
	} `xml:"memory"`
	VCPU    int      `xml:"vcpu"`
	OS      domainOS `xml:"os"`
	OnOff   string   `xml:"on_poweroff"`
	Devices devices  `xml:"devices"`
}

type domainOS struct {
	Type struct {
		Arch    string `xml:"arch,attr"`
		Machine string `xml:"machine,attr"`
		Value   string `xml:",chardata"`
	} `xml:"type"`
	Kernel  string `xml:"kernel,omitempty"`
	Initrd  string `xml:"initrd,omitempty"`
	Cmdline string `xml:"cmdline,omitempty"`
	Boot    *struct {
		Dev string `xml:"dev,attr"`
	} `xml:"boot,omitempty"`
}

type devices struct {
	Disks      []disk  `xml:"disk"`
	Interfaces []iface `xml:"interface"`
	Serial     serial  `xml:"serial"`
}

type disk struct {
	Type   string `xml:"type,attr"`
	Device string `xml:"device,attr"`
	Driver struct {
		Name string `xml:"name,attr"`
		Type string `xml:"type,attr"`
	} `xml:"driver"`
	Source struct {
		File string `xml:"file,attr"`
	} `xml:"source"`
	Target struct {
		Dev string `xml:"dev,attr"`
		Bus string `xml:"bus,attr"`
	} `xml:"target"`
}

type iface struct {
	Type   string `xml:"type,attr"`
	Source struct {
		Network string `xml:"network,attr"`
	} `xml:"source"`
	Model struct {
		Type string `xml:"type,attr"`
	} `xml:"model"`
}

type serial struct {
	Type string `xml:"type,attr"`
	Log  struct {
		File string `xml:"file,attr"`
	} `xml:"log"`
	Target struct {
		Port int `xml:"port,attr"`
	} `xml:"target"`
}

// domainXML describes vm as a libvirt domain: type qemu (no KVM needed),
// each disk a raw virtio disk vda, vdb, ..., a virtio NIC only when a
// network is given, and the serial console logged to <dir>/<vm>.console.log.
func domainXML(vm VM) domain {
	d := domain{Type: "qemu", Name: vm.Name, VCPU: max(vm.CPUs, 1), OnOff: "destroy"}
	d.Memory.Unit, d.Memory.Value = "MiB", vm.MemoryMiB
	if d.Memory.Value == 0 {
		d.Memory.Value = 1024
	}
	d.OS.Type.Arch, d.OS.Type.Machine, d.OS.Type.Value = "x86_64", "pc", "hvm"
	if vm.Kernel != "" {
		d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline = vm.Kernel, vm.Initrd, vm.Cmdline
	} else {
		d.OS.Boot = &struct {
			Dev string `xml:"dev,attr"`
		}{"hd"}
	}
	for i, p := range vm.Disks {
		var k disk
		k.Type, k.Device = "file", "disk"
		k.Driver.Name, k.Driver.Type = "qemu", "raw"
		k.Source.File = p
		k.Target.Dev, k.Target.Bus = "vd"+string(rune('a'+i)), "virtio"
		d.Devices.Disks = append(d.Devices.Disks, k)
	}
	if vm.Network != "" {
		var n iface
		n.Type, n.Source.Network, n.Model.Type = "network", vm.Network, "virtio"
		d.Devices.Interfaces = append(d.Devices.Interfaces, n)
	}
	d.Devices.Serial.Type = "pty"
	d.Devices.Serial.Log.File = filepath.Join(vm.Dir, vm.Name+".console.log")
	return d
}
