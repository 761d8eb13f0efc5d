package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/host"
	"github.com/asr-project/asr/vault"
)

// Wiring a libvirt domain to asr's NBD sockets: `asr track VM --libvirt`
// prints (--apply: defines) the domain with each protected disk an NBD
// source on the tracker's socket, keeping the original definition in
// <state>.track/<VM>.libvirt.xml; `asr untrack VM --libvirt` defines the
// original again. It is a one-time step, run while libvirtd runs; the
// tracker itself runs under asr-track@.service, ordered before libvirt
// starts the domain.

func libvirtBackup(trackDir, vm string) string {
	return filepath.Join(trackDir, vm+".libvirt.xml")
}

// wireLibvirt prints, and with apply defines, the VM's domain on NBD.
func wireLibvirt(ctx context.Context, g *globals, vm, sockDir string, apply bool) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	var it vault.Item
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { it, err = tx.Item(vm); return }); err != nil {
		return err
	}
	domain := it.Domain
	if domain == "" {
		domain = vm
	}
	// The original, never an earlier rewrite: a second run starts again
	// from the backup.
	backup := libvirtBackup(e.TrackDir(), vm)
	orig, err := os.ReadFile(backup)
	if errors.Is(err, os.ErrNotExist) {
		orig, err = host.DumpXML(ctx, g.hostConfig(), domain)
	}
	if err != nil {
		return err
	}
	socks := map[string]host.NBDSource{}
	for _, d := range it.Disks {
		socks[d.Path] = host.NBDSource{Export: d.Name, Socket: filepath.Join(sockDir, vm+"-"+d.Name+".sock")}
	}
	wired, err := host.NBDDomain(orig, socks)
	if err != nil {
		return fmt.Errorf("libvirt domain %s: %w: %w", domain, err, replica.ErrInvalid)
	}
	if !apply {
		_, err := g.io.Out.Write(wired)
		return err
	}
	if err := os.MkdirAll(e.TrackDir(), 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(backup); errors.Is(err, os.ErrNotExist) {
		if err := writeFileSync(backup, orig); err != nil {
			return fmt.Errorf("keep the original definition of %s: %w", domain, err)
		}
	}
	if err := host.Define(ctx, g.hostConfig(), wired); err != nil {
		return err
	}
	g.say("%s: libvirt domain %s now reaches its disks through asr's sockets in %s; its original definition is kept in %s (asr untrack %s --libvirt restores it)", vm, domain, sockDir, backup, vm)
	return nil
}

// unwireLibvirt defines the domain's original definition again.
func unwireLibvirt(ctx context.Context, g *globals, vm string) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	backup := libvirtBackup(e.TrackDir(), vm)
	orig, err := os.ReadFile(backup)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("VM %s: no original libvirt definition kept in %s: asr track %s --libvirt --apply was not run here: %w", vm, backup, vm, replica.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if err := host.Define(ctx, g.hostConfig(), orig); err != nil {
		return err
	}
	if err := os.Remove(backup); err != nil {
		return err
	}
	g.say("%s: libvirt domain defined as before asr track --libvirt --apply; stop the VM's tracker once the VM runs on its files", vm)
	return nil
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
