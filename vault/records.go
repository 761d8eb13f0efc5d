package vault

import "time"

// Site is the identity of the site this state file belongs to.
type Site struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Role is RolePrimary ("") or RoleRecovery; a recovery site's items
	// are imported from Target (asr sync), never replicated from here.
	Role   string `json:"role,omitempty"`
	Target string `json:"target,omitempty"`
}

// Site roles.
const (
	RolePrimary  = ""
	RoleRecovery = "recovery"
)

// Policy is a replication policy.
type Policy struct {
	Name               string        `json:"name"`
	Frequency          time.Duration `json:"frequency"`
	Retention          time.Duration `json:"retention"`
	AppConsistentEvery time.Duration `json:"app_consistent_every"`
	ResyncWindow       string        `json:"resync_window"`
	FreezeCommand      string        `json:"freeze_command,omitempty"`
	ThawCommand        string        `json:"thaw_command,omitempty"`
	// Bandwidth limits in bytes per second; 0 is unlimited.
	BandwidthWork  int64 `json:"bandwidth_work,omitempty"`
	BandwidthOther int64 `json:"bandwidth_other,omitempty"`
}

// Item states.
const (
	StateInitialReplication = "InitialReplication"
	StateProtected          = "Protected"
	StateResyncRequired     = "ResyncRequired"
	// StateResyncing: a resync started (its base is recorded in Resync)
	// and goes on from its checkpoint until the replica is consistent.
	StateResyncing = "Resyncing"
	// Failover states (package failover documents the machine): a
	// failover has started (Item.Failover says how far it got), has
	// brought the VM up at the recovery site and awaits commit, or was
	// committed. Replication of the item stops at FailoverInProgress.
	StateFailoverInProgress = "FailoverInProgress"
	StateFailedOver         = "FailedOver"
	StateCommitted          = "Committed"
	// Failback states: the recovered VM's disks are being synchronised
	// back to the primary (Item.Failback says how far), the VM runs at
	// the primary again and awaits failback commit, or the failback was
	// committed and replication waits for asr reprotect.
	StateFailbackInProgress = "FailbackInProgress"
	StateFailedBack         = "FailedBack"
	StateFailbackCommitted  = "FailbackCommitted"
)

// FailedOver reports a state in which the VM's workload has moved, is
// moving, or is coming back: replication of it has stopped until
// asr reprotect.
func FailedOver(state string) bool {
	switch state {
	case StateFailoverInProgress, StateFailedOver, StateCommitted,
		StateFailbackInProgress, StateFailedBack, StateFailbackCommitted:
		return true
	}
	return false
}

// Health values.
const (
	HealthNormal   = "Normal"
	HealthWarning  = "Warning"
	HealthCritical = "Critical"
)

// Item is a protected VM.
type Item struct {
	VM           string    `json:"vm"`
	Policy       string    `json:"policy"`
	Target       string    `json:"target"`
	State        string    `json:"state"`
	Health       string    `json:"health"`
	HealthReason string    `json:"health_reason,omitempty"`
	Disks        []Disk    `json:"disks"`
	Created      time.Time `json:"created"`
	LastPoint    string    `json:"last_point,omitempty"`
	LastPointAt  time.Time `json:"last_point_at,omitzero"`
	LastAppAt    time.Time `json:"last_app_consistent_at,omitzero"`
	// Pending is the recovery point a replicate cycle is making; a crashed
	// cycle is finished from it by the next run.
	Pending *Pending `json:"pending,omitempty"`
	// Resync is the resync in progress (state Resyncing).
	Resync *Resync `json:"resync,omitempty"`
	// Failover is the planned or unplanned failover in progress or done;
	// Test the test failover running. Machine is how the VM runs at the
	// recovery site (asr vm set).
	Failover *Failover `json:"failover,omitempty"`
	Test     *Failover `json:"test,omitempty"`
	// Failback is the failback in progress or done, after a committed
	// failover.
	Failback *Failback `json:"failback,omitempty"`
	Machine  *Machine  `json:"machine,omitempty"`
	// Domain is the libvirt domain the VM runs as, when protection read
	// its disks from libvirt (and the name host control uses); "" means
	// the VM's own name.
	Domain string `json:"domain,omitempty"`
	// Retry state for recoverable failures.
	Failures     int       `json:"failures,omitempty"`
	FirstFailure time.Time `json:"first_failure,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
}

// HostName is the name host control knows the VM by: its libvirt domain
// when protection recorded one, else the VM's name.
func (it Item) HostName() string {
	if it.Domain != "" {
		return it.Domain
	}
	return it.VM
}

// Disk is one protected virtual disk of an item.
type Disk struct {
	Name   string `json:"name"`   // unique within the VM; NBD export name
	Path   string `json:"path"`   // source disk file
	Format string `json:"format"` // fixed, dynamic, differencing, raw
	Size   int64  `json:"size"`   // virtual size of the source
	// Replica is the disk's name on the target; ReplicaSize its virtual size
	// (Size rounded up to 1 MiB).
	Replica     string `json:"replica"`
	ReplicaSize int64  `json:"replica_size"`
	// CopiedTo is how far the initial copy got (virtual offset); Copied
	// says it finished.
	CopiedTo int64 `json:"copied_to"`
	Copied   bool  `json:"copied"`
	// AppliedSeq and AppliedID name the last log applied to the replica:
	// the next log must chain from AppliedID.
	AppliedSeq uint64 `json:"applied_seq"`
	AppliedID  string `json:"applied_id,omitempty"`
	// MapDigest identifies the replica's checksum map object at the target
	// as asr last wrote it ("": none); MapPoint names a point whose logs
	// are being applied, so the map is being brought up to date.
	MapDigest string `json:"map_digest,omitempty"`
	MapPoint  string `json:"map_point,omitempty"`
	// Seed, when set, is the file the initial copy reads instead of Path
	// (SeedFormat its format): a reverse reprotect seeds each replica from
	// the original disk at the primary, and a full resync follows.
	Seed       string `json:"seed,omitempty"`
	SeedFormat string `json:"seed_format,omitempty"`
}

// Resync is a resync's checkpoint: where each disk's compare stands.
type Resync struct {
	Reason  string       `json:"reason"`
	Started time.Time    `json:"started"`
	Disks   []ResyncDisk `json:"disks"`
}

// ResyncDisk is one disk's part of a resync.
type ResyncDisk struct {
	Name string `json:"name"`
	// Full: every block is compared; otherwise only the resync set's.
	Full bool `json:"full"`
	// ReadReplica: the replica's blocks are read back to compare; otherwise
	// they are compared with its checksum map. Why says why, for status.
	ReadReplica bool   `json:"read_replica"`
	Why         string `json:"why,omitempty"`
	// Next is the offset compared up to; Total the bytes to compare.
	Next     int64 `json:"next"`
	Total    int64 `json:"total"`
	Compared int64 `json:"compared"`
	Sent     int64 `json:"sent"`
	Read     int64 `json:"read"` // bytes read back from the replica
	// ComparedAtNext is Compared as of the checkpoint at Next: a resumed
	// run counts from there, so blocks compared twice count once.
	ComparedAtNext int64 `json:"compared_at_next"`
	// Sending lists blocks an interrupted run may have sent: they are
	// compared by reading the replica, so none is sent twice.
	Sending []int `json:"sending,omitempty"`
	// ZeroFrom, when not 0, is where a grown replica's new region starts:
	// it is known to be zeros and is never read back.
	ZeroFrom int64 `json:"zero_from,omitempty"`
	Done     bool  `json:"done"`
}

// Failover is one failover of an item: what it restores and how far it got.
type Failover struct {
	Kind      string    `json:"kind"` // test, planned or unplanned
	Point     string    `json:"point"`
	PointTime time.Time `json:"point_time"`
	// Name is the VM's name at the recovery host (<vm>-test for a test);
	// Dir the local folder of its recovery disks or deployment files.
	Name  string         `json:"name"`
	Dir   string         `json:"dir"`
	Disks []RecoveryDisk `json:"disks"`
	// Step is the next step to run: disks, start, done.
	Step    string    `json:"step"`
	Started time.Time `json:"started"`
	// Host says what the host driver did about the VM, for status.
	Host string `json:"host,omitempty"`
	// Prev is the item's state before the failover, which a planned
	// failover that could not shut the source down returns to.
	Prev string `json:"prev,omitempty"`
	// LastWrite is the newest write the target heard of, for the
	// data-loss window.
	LastWrite time.Time `json:"last_write,omitzero"`
	MadeDir   bool      `json:"made_dir,omitempty"` // the failover created Dir
}

// Failback brings a committed failover home: the recovered VM's disks
// are synchronised block by block to the original disks (or copied to
// new ones in Alternate), first while the recovered VM runs, then after
// it is shut down.
type Failback struct {
	// Alternate is the folder of new disks, <disk>.vhd, for a primary
	// whose disks were lost ("" is the original disks); the commit makes
	// them the protected disks.
	Alternate string `json:"alternate,omitempty"`
	// Step is the next step to run: sync, shutdown, final, start, done.
	Step    string    `json:"step"`
	Started time.Time `json:"started"`
	// Disks is each disk's sync checkpoint for the pass running; Sent
	// adds up over both passes, FirstSent is the first pass's share.
	Disks     []ResyncDisk `json:"disks"`
	FirstSent int64        `json:"first_sent,omitempty"`
	// Host says what the host driver did, for status.
	Host string `json:"host,omitempty"`
}

// Sent is what the failback wrote to the primary's disks so far.
func (f *Failback) Sent() int64 {
	var n int64
	for _, d := range f.Disks {
		n += d.Sent
	}
	return n
}

// RecoveryDisk is one disk a failover makes.
type RecoveryDisk struct {
	Name string `json:"name"`
	// Path is a local file, or a disk name on the target (Azure).
	Path string `json:"path"`
	Done bool   `json:"done"`
}

// Machine is how a VM runs at the recovery site; zero values take the
// host driver's defaults. The template fields override host.* for this VM.
type Machine struct {
	MemoryMiB   int    `json:"memory_mib,omitempty"`
	CPUs        int    `json:"cpus,omitempty"`
	Network     string `json:"network,omitempty"`
	TestNetwork string `json:"test_network,omitempty"`
	Size        string `json:"size,omitempty"` // Azure VM size
	Kernel      string `json:"kernel,omitempty"`
	Initrd      string `json:"initrd,omitempty"`
	Cmdline     string `json:"cmdline,omitempty"`
	Driver      string `json:"driver,omitempty"`
	Shutdown    string `json:"shutdown,omitempty"`
	Start       string `json:"start,omitempty"`
	Freeze      string `json:"freeze,omitempty"`
	Thaw        string `json:"thaw,omitempty"`
}

// Pending is a recovery point being made.
type Pending struct {
	Point         string            `json:"point"`
	Time          time.Time         `json:"time"`
	AppConsistent bool              `json:"app_consistent"`
	AppFailed     string            `json:"app_failed,omitempty"` // why freeze or thaw failed
	UpTo          map[string]uint64 `json:"up_to"`                // disk name -> last log seq in the point
}

// Point is a recovery point: every disk of a VM at one instant.
type Point struct {
	ID            string    `json:"id"`
	VM            string    `json:"vm"`
	Time          time.Time `json:"time"`
	AppConsistent bool      `json:"app_consistent"`
	Disks         []string  `json:"disks"` // disk names; snapshot name = ID
	Bytes         int64     `json:"bytes"` // bytes shipped for this point
	// Chain says, per disk name, the last log the point holds: where the
	// chain goes on from (asr state rebuild reads it from the target).
	Chain map[string]Link `json:"chain,omitempty"`
	// Sizes says, per disk name, the disk's size at the point, which an
	// older point keeps after the disk grew.
	Sizes map[string]int64 `json:"sizes,omitempty"`
	// Site is the site that replicated the point: after a failback and
	// reprotect, or a reverse reprotect, one history holds both
	// directions.
	Site string `json:"site,omitempty"`
}

// Link is one log in a disk's chain: its sequence number and ID.
type Link struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}

// Job states.
const (
	JobRunning   = "Running"
	JobSucceeded = "Succeeded"
	JobFailed    = "Failed"
	// JobInterrupted: found Running with nobody holding its VM's lock, so
	// the process running it died (kill -9, a crash, a power cut).
	JobInterrupted = "Interrupted"
)

// Job is the record of one long operation.
type Job struct {
	ID       uint64        `json:"id"`
	Kind     string        `json:"kind"`
	VM       string        `json:"vm"`
	State    string        `json:"state"`
	Started  time.Time     `json:"started"`
	Ended    time.Time     `json:"ended,omitzero"`
	Steps    []Step        `json:"steps"`
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration"`
	Error    string        `json:"error,omitempty"`
}

// Step is one step of a job.
type Step struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
}
