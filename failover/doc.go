// Package failover turns recovery points back into disks: export of a
// point as fixed VHD files today; test, planned and unplanned failover,
// commit, failback and reprotect build on the same reading of a point.
//
// Everything here reads the target only (manifest, point records,
// snapshots), never the primary's state file, so it works from a recovery
// site when the primary is gone.
package failover
