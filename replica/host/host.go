package host

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/asr-project/asr/replica/hook"
)

var (
	// ErrUnsupported: the driver has nothing configured for the call.
	ErrUnsupported = errors.New("not supported by the host driver")
	// ErrConfig: an unknown driver or a bad setting.
	ErrConfig = errors.New("bad host configuration")
)

// VM is what a driver needs to know about one VM.
type VM struct {
	Name    string   // {vm}
	Disks   []string // {disks}: its disk files (or URLs, on Azure)
	Dir     string   // {dir}: the folder of its recovery disks
	Network string   // {network}: network to attach; "" none
	// MemoryMiB and CPUs: 0 is the driver's default (1024 MiB, 1 CPU).
	MemoryMiB int
	CPUs      int
	// Kernel, Initrd and Cmdline boot a kernel directly, for a disk with
	// no boot loader.
	Kernel, Initrd, Cmdline string
}

// Host controls VMs on one host.
type Host interface {
	// Shutdown stops a running VM, gracefully first and forced after the
	// timeout. A VM that is off or unknown is success.
	Shutdown(ctx context.Context, vm VM) error
	// Start starts the VM on vm.Disks; isolated attaches no network, or
	// the test network. A VM that already runs is success.
	Start(ctx context.Context, vm VM, isolated bool) error
	// Remove stops the VM and removes what Start defined for it. A VM
	// that is gone is success.
	Remove(ctx context.Context, vm VM) error
	// Freeze and Thaw the guest's file systems around an app-consistent
	// point.
	Freeze(ctx context.Context, vm VM) error
	Thaw(ctx context.Context, vm VM) error
}

// Config is a site's host settings (host.* in the config).
type Config struct {
	Driver                        string // command, libvirt or none ("" is none)
	Shutdown, Start, Freeze, Thaw string // command driver templates
	// Timeout bounds each command and a graceful shutdown; 0 is
	// hook.DefaultTimeout.
	Timeout     time.Duration
	TestNetwork string // the network of an isolated start; "" none
	URI         string // libvirt connection; "" is qemu:///system
}

// Drivers are the known driver names.
var Drivers = []string{"none", "command", "libvirt"}

// New returns the driver cfg names.
func New(cfg Config) (Host, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = hook.DefaultTimeout
	}
	switch cfg.Driver {
	case "", "none":
		return none{}, nil
	case "command":
		return command{cfg}, nil
	case "libvirt":
		if cfg.URI == "" {
			cfg.URI = "qemu:///system"
		}
		return libvirt{cfg}, nil
	}
	return nil, fmt.Errorf("host.driver %q: use one of %s: %w", cfg.Driver, strings.Join(Drivers, ", "), ErrConfig)
}

type none struct{}

func (none) Shutdown(context.Context, VM) error    { return ErrUnsupported }
func (none) Start(context.Context, VM, bool) error { return ErrUnsupported }
func (none) Remove(context.Context, VM) error      { return ErrUnsupported }
func (none) Freeze(context.Context, VM) error      { return ErrUnsupported }
func (none) Thaw(context.Context, VM) error        { return ErrUnsupported }

// command runs the operator's templates.
type command struct{ cfg Config }

func (c command) Shutdown(ctx context.Context, vm VM) error { return c.run(ctx, c.cfg.Shutdown, vm) }
func (c command) Remove(ctx context.Context, vm VM) error   { return c.run(ctx, c.cfg.Shutdown, vm) }
func (c command) Freeze(ctx context.Context, vm VM) error   { return c.run(ctx, c.cfg.Freeze, vm) }
func (c command) Thaw(ctx context.Context, vm VM) error     { return c.run(ctx, c.cfg.Thaw, vm) }

func (c command) Start(ctx context.Context, vm VM, isolated bool) error {
	if isolated {
		vm.Network = c.cfg.TestNetwork
	}
	return c.run(ctx, c.cfg.Start, vm)
}

func (c command) run(ctx context.Context, tmpl string, vm VM) error {
	if tmpl == "" {
		return ErrUnsupported
	}
	disks := make([]string, len(vm.Disks))
	for i, d := range vm.Disks {
		disks[i] = Quote(d)
	}
	cmd := strings.NewReplacer("{vm}", Quote(vm.Name), "{disks}", strings.Join(disks, " "),
		"{dir}", Quote(vm.Dir), "{network}", Quote(vm.Network)).Replace(tmpl)
	if _, err := hook.Run(ctx, cmd, c.cfg.Timeout); err != nil {
		return fmt.Errorf("command %q failed: %w", cmd, err)
	}
	return nil
}

var plain = regexp.MustCompile(`^[A-Za-z0-9_./:=@%+,-]*$`)

// Quote makes s one shell word; plain words stay as they are, so the
// commands asr runs read as the operator wrote them.
func Quote(s string) string {
	if plain.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
