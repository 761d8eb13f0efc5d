// Package host controls VMs on a host: shut one down, start one (isolated,
// for a test failover), remove what a start defined, and freeze and thaw
// its file systems. Failover uses it at both sites and replicate uses it
// for app-consistent points.
//
// # Drivers
//
//   - none: every method is ErrUnsupported. Callers then say what the
//     operator must do; asr never claims to have started a VM it did not.
//   - command: operator templates (host.start, host.shutdown, host.freeze,
//     host.thaw) run through replica/hook with the timeout. {vm}, {disks}
//     (space-separated), {dir} and {network} are replaced by shell-quoted
//     values, so a path with a space stays one argument. An empty template
//     is ErrUnsupported; Remove runs the shutdown template.
//   - libvirt: virsh, not Go bindings (the module proxy here serves none,
//     and virsh is what operators have). Start writes the domain XML
//     <dir>/<vm>.xml (disks as virtio, raw: a fixed VHD is the raw disk
//     with a 512-byte footer after it), defines it and starts it; domain
//     type qemu, which runs without KVM (TCG). Shutdown asks the guest
//     (virsh shutdown), polls until it is off, and destroys it after the
//     timeout. Freeze and thaw need qemu-guest-agent in the guest.
//
// # Domain XML
//
// DomainDisks lists the disks of a domain's XML (virsh dumpxml), and
// NBDDomain rewrites chosen file disks into NBD network disks on unix
// sockets (driver type raw, no backingStore), changing only those bytes
// of the document. A path that names no file disk is ErrDomainDisk, so a
// second NBDDomain on its own output fails: rewrite the original.
//
// Every method is safe to call again after a kill -9: shutting down a VM
// that is off, starting one that runs and removing one that is gone all
// succeed, so a failover rerun goes on where it stopped.
package host
