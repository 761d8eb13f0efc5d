// Package catalog owns what asr keeps on a target besides the replica disks:
// the objects that let a recovery site list points and fail over with the
// primary and its state file gone, and let a primary rebuild its state file.
//
// These types are the target's, not the state file's: they are versioned by
// Layout and change only on purpose, so a change to a vault record never
// silently changes what another site (or an older or newer asr) reads here.
// The engine converts between the two at the edge (replica/manifest.go).
//
// # Layout 1
//
//	vms/<vm>/manifest.json        Manifest: the VM's disks, sizes, replica names,
//	                              its site and policy at enable time
//	vms/<vm>/points/<id>.json     Point: one recovery point (and the site that made
//	                              it); <id> sorts by time
//	vms/<vm>/status.json          Status: the newest write the primary shipped or
//	                              sealed, for the data-loss window of a failover
//	vms/<vm>/failover.json        Failover: a failover or failback in progress or
//	                              done, so both sites see where the VM runs (and,
//	                              after a failback to new disks, which they are)
//	plans/<name>.json             Plan: a recovery plan, for a recovery site to run
//	vms/<vm>/maps/<disk>.<digest> the replica's checksum map, on a target that is
//	                              not Local (replica/rmap.go)
//
// Replica disk names are "<vm>.<disk>": VM names may hold dots, disk names
// may not, so the split is never ambiguous. Recovery disks a failover makes
// on a target that keeps them (Azure) are "recovery/<vm>/<disk>" and, for a
// test failover, "recovery/<vm>-test/<disk>".
//
// A reader refuses an object whose layout is newer than the one it knows,
// with a message to upgrade asr; a writer always writes Layout.
package catalog
