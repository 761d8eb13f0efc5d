package host

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/asr-project/asr/replica/hook"
)

// Placeholder for the helper's package; replaced at merge.

var (
	ErrUnsupported = errors.New("not supported by the host driver")
	ErrConfig      = errors.New("bad host configuration")
)

type VM struct {
	Name                    string
	Disks                   []string
	Dir                     string
	Network                 string
	MemoryMiB               int
	CPUs                    int
	Kernel, Initrd, Cmdline string
}

type Host interface {
	Shutdown(ctx context.Context, vm VM) error
	Start(ctx context.Context, vm VM, isolated bool) error
	Remove(ctx context.Context, vm VM) error
	Freeze(ctx context.Context, vm VM) error
	Thaw(ctx context.Context, vm VM) error
}

type Config struct {
	Driver                        string
	Shutdown, Start, Freeze, Thaw string
	Timeout                       time.Duration
	TestNetwork                   string
	URI                           string
}

type none struct{}

func (none) Shutdown(context.Context, VM) error    { return ErrUnsupported }
func (none) Start(context.Context, VM, bool) error { return ErrUnsupported }
func (none) Remove(context.Context, VM) error      { return ErrUnsupported }
func (none) Freeze(context.Context, VM) error      { return ErrUnsupported }
func (none) Thaw(context.Context, VM) error        { return ErrUnsupported }

func New(cfg Config) (Host, error) {
	if cfg.Driver == "command" {
		return command{cfg}, nil
	}
	return none{}, nil
}

type command struct{ cfg Config }

func (c command) run(ctx context.Context, tmpl string, vm VM) error {
	if tmpl == "" {
		return ErrUnsupported
	}
	r := strings.NewReplacer("{vm}", vm.Name, "{disks}", strings.Join(vm.Disks, " "), "{dir}", vm.Dir, "{network}", vm.Network)
	_, err := hook.Run(ctx, r.Replace(tmpl), c.cfg.Timeout)
	return err
}
func (c command) Shutdown(ctx context.Context, vm VM) error { return c.run(ctx, c.cfg.Shutdown, vm) }
func (c command) Start(ctx context.Context, vm VM, iso bool) error {
	return c.run(ctx, c.cfg.Start, vm)
}
func (c command) Remove(ctx context.Context, vm VM) error { return c.run(ctx, c.cfg.Shutdown, vm) }
func (c command) Freeze(ctx context.Context, vm VM) error { return c.run(ctx, c.cfg.Freeze, vm) }
func (c command) Thaw(ctx context.Context, vm VM) error   { return c.run(ctx, c.cfg.Thaw, vm) }
