package host

import (
	"context"
	"fmt"
	"os"
)

// DumpXML returns the persistent definition of a libvirt domain (virsh
// dumpxml --inactive), whatever the site's host driver.
func DumpXML(ctx context.Context, cfg Config, name string) ([]byte, error) {
	out, err := virshFor(cfg).virsh(ctx, "dumpxml", "--inactive", name)
	if err != nil {
		return nil, fmt.Errorf("libvirt domain %s: %w", name, err)
	}
	return []byte(out), nil
}

// Define makes domXML the domain's persistent definition (virsh define);
// a running domain takes it at its next start.
func Define(ctx context.Context, cfg Config, domXML []byte) error {
	f, err := os.CreateTemp("", "asr-domain-*.xml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(domXML); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = virshFor(cfg).virsh(ctx, "define", f.Name())
	return err
}

func virshFor(cfg Config) libvirt {
	cfg.Driver = "libvirt"
	h, _ := New(cfg)
	return h.(libvirt)
}
