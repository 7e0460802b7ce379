// Package report holds what a simulation run measured and shows it: as
// text a person takes in at a glance, as JSON for machines, and as plots
// (fault breakdown, walk-length histogram, cost over time) drawn with
// gonum plot in SVG and PNG.
package report

import "time"

// Report is one run's results. Every count covers the whole run (or, if
// Interrupted, the part that ran).
type Report struct {
	Scenario    string `json:"scenario"`
	Description string `json:"description,omitempty"`
	Seed        uint64 `json:"seed"`
	// Variant names the comparison variant that produced the report.
	Variant     string  `json:"variant,omitempty"`
	Interrupted bool    `json:"interrupted"`
	Elapsed     float64 `json:"elapsed_seconds"`
	// CPUSeconds is the process's CPU time during the run (every worker
	// and the pressure driver): Elapsed times the CPUs it had.
	CPUSeconds float64 `json:"cpu_seconds"`

	Accesses Accesses `json:"accesses"`
	// VMs are the guest VMs, every level (L0's first, each guest
	// hypervisor's after it, depth first).
	VMs []VM `json:"vms"`
	// Hypervisors are the guest hypervisors (nested virtualization).
	Hypervisors []Hypervisor `json:"hypervisors,omitempty"`
	MIPS        []MIPS       `json:"mips"`
	Host        Host         `json:"host"`
	// WalkReads is the histogram of descriptor reads per TLB-miss walk
	// over every vCPU: WalkReads[n] walks read n descriptors.
	WalkReads []uint64 `json:"walk_reads_histogram"`
	Checks    Checks   `json:"checks"`
	Timeline  []Sample `json:"timeline"`
	Errors    []string `json:"errors,omitempty"`
}

// Accesses counts guest memory accesses and their rate.
type Accesses struct {
	// Target is the scenario's duration (user accesses).
	Target uint64 `json:"target"`
	// User: the workloads' loads, stores and fetches (arm64 guests);
	// Kernel: the arm64 guest kernels' own; MIPS: the MIPS guests'
	// hardware accesses. Total is their sum.
	User   uint64 `json:"user"`
	Kernel uint64 `json:"kernel"`
	MIPS   uint64 `json:"mips"`
	Total  uint64 `json:"total"`
	// PerSecond is Total / elapsed wall time; UserPerSecond User's.
	PerSecond     float64 `json:"per_second"`
	UserPerSecond float64 `json:"user_per_second"`
	// PerCPUSecond is Total / CPUSeconds: the rate per CPU the simulator
	// had, whatever else the machine ran.
	PerCPUSecond float64 `json:"per_cpu_second"`
}

// VM is one arm64 VM that runs a guest OS: a VM of the host hypervisor
// (L0), or of a guest hypervisor (Nested says how it ran).
type VM struct {
	Name  string `json:"name"`
	Level int    `json:"level"` // 1: a VM of L0; 2: of an L1; 3: of an L2
	// Hypervisor names the guest hypervisor that runs it (level >= 2).
	Hypervisor string `json:"hypervisor,omitempty"`
	VCPUs      int    `json:"vcpus"`
	Granule    uint64 `json:"granule"`
	Levels     int    `json:"stage1_levels"`
	// Stage2Levels is the number of stage-2 levels walked (for a nested
	// VM, the shadow stage 2's).
	Stage2Levels int `json:"stage2_levels"`

	UserAccesses uint64 `json:"user_accesses"`
	// TLB: accesses by the VM's vCPUs (user and kernel) that hit the TLB,
	// and the walks of the ones that missed; HitRate is hits/(hits+walks).
	TLBHits uint64  `json:"tlb_hits"`
	Walks   uint64  `json:"walks"`
	HitRate float64 `json:"tlb_hit_rate"`
	// For a nested VM these are its vCPU's (L0's vCPU that runs it: its
	// hypervisors' own accesses on it included).
	// UserWalks are the walks of user accesses (retries after a fault
	// included); UserHitRate is 1 - UserWalks/UserAccesses.
	UserWalks   uint64  `json:"user_walks"`
	UserHitRate float64 `json:"user_tlb_hit_rate"`
	DescRead    uint64  `json:"descriptor_reads"`
	// ReadsPerWalk is DescRead / Walks.
	ReadsPerWalk float64 `json:"descriptor_reads_per_walk"`

	Guest   GuestFaults `json:"guest"`
	Stage2  S2Faults    `json:"stage2"`
	MMIO    uint64      `json:"mmio_exits"`
	Exits   uint64      `json:"exits_to_l0"`
	TLBIs   TLBIs       `json:"guest_tlbis"`
	PTBytes PTBytes     `json:"page_table_bytes"`
	// Processes live at the end, and Spawned in all (forks included).
	Processes uint64 `json:"processes"`
	Spawned   uint64 `json:"processes_created"`
	// TraceRecords is the trace records replayed by trace workloads.
	TraceRecords uint64 `json:"trace_records"`
	// Nested is how a VM of a guest hypervisor ran (nil for L0's).
	Nested *NestedVM `json:"nested,omitempty"`
}

// NestedVM is what it took to run a VM of a guest hypervisor: the faults
// at each level below it, and the software three-stage walk's cost of
// its TLB misses when measured.
type NestedVM struct {
	// L0 are L0's shadow faults while the VM ran (on L0's vCPU that runs
	// it): Forwarded went to L1 (its stage 2, or for an L3 its shadow,
	// faulted).
	L0 ShadowFaults `json:"l0_shadow"`
	// L1 are, for an L3, L1's shadow faults: Forwarded went to L2.
	L1 *ShadowFaults `json:"l1_shadow,omitempty"`
	// Hypervisor is what the VM's own guest hypervisor did for it:
	// stage-2 faults handled by mapping its memory.
	Hypervisor HypervisorWork `json:"hypervisor_work"`
	// Entries and VEL2Entries are L0's world switches into the VM and
	// out of it to the guest hypervisor's virtual EL2.
	Entries     uint64 `json:"entries"`
	VEL2Entries uint64 `json:"vel2_entries"`
	// Stage2Bytes is its hypervisor's stage 2 for it (in the hypervisor's
	// memory); ShadowBytes L0's shadow stage 2 it runs on.
	Stage2Bytes uint64 `json:"stage2_bytes"`
	ShadowBytes uint64 `json:"shadow_bytes"`
	// ThreeStage is the software three-stage walk of its processes' TLB
	// misses (three_stage_walk), nil when not measured.
	ThreeStage *ThreeStage `json:"three_stage,omitempty"`
}

// ShadowFaults are stage-2 faults on a shadow stage 2 by outcome.
type ShadowFaults struct {
	Faults uint64 `json:"faults"`
	// Installed put a shadow entry; Forwarded were injected into the
	// guest hypervisor above (its stage 2 faulted); MMIO left for L0's
	// VMM; AccessFlag set the Access flag of an entry aging had cleared.
	Installed  uint64 `json:"installed"`
	Forwarded  uint64 `json:"forwarded"`
	MMIO       uint64 `json:"mmio"`
	AccessFlag uint64 `json:"access_flag"`
}

// HypervisorWork is what a guest hypervisor's code did (package
// guesthyp's counters).
type HypervisorWork struct {
	Faults    uint64 `json:"stage2_faults"`
	Maps      uint64 `json:"maps"`
	BlockMaps uint64 `json:"block_maps"`
	TLBIs     uint64 `json:"tlbis"`
}

// ThreeStage is the software three-stage walk (no shadow: the VM's stage
// 1 over its hypervisor's stage 2 over L0's) of every TLB miss of the
// VM's processes.
type ThreeStage struct {
	// Walks and Reads: the misses walked and their descriptor reads;
	// Failed, misses whose three-stage walk faulted (not counted).
	Walks        uint64   `json:"walks"`
	Reads        uint64   `json:"descriptor_reads"`
	ReadsPerWalk float64  `json:"descriptor_reads_per_walk"`
	Failed       uint64   `json:"failed"`
	Histogram    []uint64 `json:"walk_reads_histogram"`
	// ShadowWalks and ShadowReads are the same misses through the
	// shadow (the walks the hardware did for them).
	ShadowWalks     uint64   `json:"shadow_walks"`
	ShadowReads     uint64   `json:"shadow_descriptor_reads"`
	ShadowHistogram []uint64 `json:"shadow_walk_reads_histogram"`
}

// Hypervisor is a guest hypervisor: its VM, how it ran (FEAT_NV or NV2),
// the exits it took to the hypervisor below it by cause, the TLBIs and
// ATs that hypervisor emulated, the shadow stage 2s built for its VMs and
// their memory, and the reverse map.
type Hypervisor struct {
	Name       string   `json:"name"`
	Level      int      `json:"level"`
	VCPUs      int      `json:"vcpus"`
	Mode       string   `json:"mode"` // "NV" or "NV2"
	E2H        bool     `json:"e2h"`
	ReverseMap bool     `json:"reverse_map"`
	VMs        []string `json:"vms"`
	// Exits are its exits from virtual EL2 to the hypervisor below (L0
	// for an L1, L1 for an L2; an L2's each through L0 too).
	Exits HypervisorExits `json:"exits"`
	// GuestExits are the exits while its VMs ran: shadow faults, their
	// traps (and aborts of their NV2 accesses); ForwardedTraps of the
	// traps went on to it.
	GuestExits     uint64 `json:"guest_exits"`
	ForwardedTraps uint64 `json:"forwarded_traps"`
	// Entries and VEL2Entries are world switches into its VMs and back to
	// its virtual EL2.
	Entries     uint64 `json:"entries"`
	VEL2Entries uint64 `json:"vel2_entries"`
	// ATFast and ATSoftware are its AT instructions emulated by the fast
	// path and by the software walk; VNCRSyncs copies of its VNCR page.
	ATFast     uint64 `json:"at_fast"`
	ATSoftware uint64 `json:"at_software"`
	VNCRSyncs  uint64 `json:"vncr_syncs"`
	// Work is what its own code did (stage-2 faults of its VMs, maps,
	// TLBIs issued).
	Work HypervisorWork `json:"work"`
	// Memory: its stage-2 tables for its VMs (in its memory), the shadow
	// stage 2s built for them, L0's stage 2 for its VM (L1), and the
	// reverse map's preallocated bytes.
	Stage2Bytes   uint64 `json:"stage2_bytes"`
	ShadowBytes   uint64 `json:"shadow_bytes"`
	Shadows       int    `json:"shadows"`
	ShadowFlushes uint64 `json:"shadow_flushes"`
	L0Stage2Bytes uint64 `json:"l0_stage2_bytes"`
	// Stage2 are L0's stage-2 faults of its VM's memory (L1: its own
	// accesses and the shadow faults resolved through L0's fault path).
	Stage2 *S2Faults `json:"l0_stage2,omitempty"`
	// Rmap is L0's reverse map for it (L1).
	Rmap *Rmap `json:"reverse_map_stats,omitempty"`
}

// HypervisorExits are a guest hypervisor's exits from virtual EL2 by
// cause: its EL2 register accesses (FEAT_NV traps every one; NV2 only
// those without a VNCR offset), ERETs, TLBIs and ATs (emulated by the
// hypervisor below), and faults of its own accesses on that hypervisor's
// stage 2.
type HypervisorExits struct {
	SysReg    uint64 `json:"sysreg"`
	ERET      uint64 `json:"eret"`
	TLBI      uint64 `json:"tlbi"`
	AT        uint64 `json:"at"`
	OwnFaults uint64 `json:"own_stage2_faults"`
	Total     uint64 `json:"total"`
}

// Rmap is L0's reverse map for a guest hypervisor (host/nested.RmapStats)
// and the shadow leaves host changes unmapped.
type Rmap struct {
	Enabled        bool   `json:"enabled"`
	Extents        int    `json:"extents"`
	Capacity       int    `json:"capacity"`
	Bytes          uint64 `json:"bytes"`
	Inserts        uint64 `json:"inserts"`
	Merges         uint64 `json:"merges"`
	Overflows      uint64 `json:"overflows"`
	CoarseFlushes  uint64 `json:"coarse_flushes"`
	CoarseProtects uint64 `json:"coarse_write_protects"`
	AgeSkipped     uint64 `json:"age_skipped"`
	Unmapped       uint64 `json:"ranges_unmapped"`
	WriteProtected uint64 `json:"ranges_write_protected"`
	Aged           uint64 `json:"ranges_aged"`
	Young          uint64 `json:"ranges_young"`
	ChangedPTEs    uint64 `json:"changed_ptes"`
	// LeavesUnmapped and BytesUnmapped are the shadow leaves host changes
	// removed (and what they mapped).
	LeavesUnmapped uint64 `json:"shadow_leaves_unmapped"`
	BytesUnmapped  uint64 `json:"shadow_bytes_unmapped"`
}

// GuestFaults are the guest kernel's stage-1 page faults by resolution,
// and its other work.
type GuestFaults struct {
	DemandZero      uint64 `json:"demand_zero_page"`
	DemandPage      uint64 `json:"demand_page"`
	COWCopy         uint64 `json:"cow_copy"`
	COWReuse        uint64 `json:"cow_reuse"`
	Spurious        uint64 `json:"spurious"`
	Total           uint64 `json:"total"`
	Syscalls        uint64 `json:"syscalls"`
	Forks           uint64 `json:"forks"`
	Execs           uint64 `json:"execs"`
	Exits           uint64 `json:"exits"`
	Mmaps           uint64 `json:"mmaps"`
	Munmaps         uint64 `json:"munmaps"`
	ContextSwitches uint64 `json:"context_switches"`
	ASIDRollovers   uint64 `json:"asid_rollovers"`
}

// S2Faults are the host hypervisor's (L0's) stage-2 faults by outcome.
type S2Faults struct {
	// Maps installed a leaf (BlockMaps of them a block), Relaxes added
	// write permission, AccessFlag set AF, Retries found an invalidation
	// racing and started again.
	Maps       uint64 `json:"maps"`
	BlockMaps  uint64 `json:"block_maps"`
	Relaxes    uint64 `json:"relaxes"`
	AccessFlag uint64 `json:"access_flag"`
	Retries    uint64 `json:"retries"`
	Total      uint64 `json:"total"`
	// NotifierUnmaps are MMU-notifier invalidations that unmapped stage
	// 2, ChangedPTEs change_pte remaps.
	NotifierUnmaps uint64 `json:"notifier_unmaps"`
	ChangedPTEs    uint64 `json:"changed_ptes"`
}

// TLBIs counts TLB invalidations by operation name.
type TLBIs map[string]uint64

// PTBytes is page-table memory.
type PTBytes struct {
	// Stage1 is the guest's (kernel and processes), now and at its peak.
	Stage1     uint64 `json:"stage1"`
	Stage1Peak uint64 `json:"stage1_peak"`
	// Stage2 is the hypervisor's tables for the VM.
	Stage2 uint64 `json:"stage2"`
}

// MIPS is one MIPS trap-and-emulate guest.
type MIPS struct {
	Name      string `json:"name"`
	GVATables bool   `json:"gva_tables"`
	// UserAccesses are the guest processes' loads and stores;
	// Accesses every hardware access (kernel included).
	UserAccesses uint64 `json:"user_accesses"`
	Accesses     uint64 `json:"accesses"`
	HostTLBHits  uint64 `json:"host_tlb_hits"`
	FastRefills  uint64 `json:"fast_refills"`
	SlowRefills  uint64 `json:"slow_refills"`
	GuestScans   uint64 `json:"guest_tlb_scans"`
	// Compared is the guest TLB entries those scans compared, TableReads
	// the GVA-table words the fast refill read.
	Compared     uint64  `json:"guest_tlb_entries_compared"`
	TableReads   uint64  `json:"gva_table_reads"`
	GuestFaults  uint64  `json:"guest_tlb_faults"`
	Exceptions   uint64  `json:"exceptions_injected"`
	Flushes      uint64  `json:"flushes"`
	Verified     uint64  `json:"values_verified"`
	Errors       uint64  `json:"errors"`
	SecondsSpent float64 `json:"seconds"`
}

// Host is the host's side: its TLB maintenance, its memory management
// and the pressure driver's events.
type Host struct {
	CPUs          int    `json:"cpus"`
	TLBIs         TLBIs  `json:"tlbis"`
	VMIDRollovers uint64 `json:"vmid_rollovers"`
	// Per physical CPU TLB: hits, of them in the micro-TLBs, misses.
	TLBHits, TLBMicroHits, TLBMisses uint64            `json:"-"`
	TLB                              TLBCounts         `json:"tlb"`
	Memory                           HostMemory        `json:"memory"`
	Pressure                         map[string]uint64 `json:"pressure_events"`
}

// TLBCounts are the physical CPUs' TLB counters summed.
type TLBCounts struct {
	Hits        uint64 `json:"hits"`
	MicroHits   uint64 `json:"micro_hits"`
	Misses      uint64 `json:"misses"`
	Invalidated uint64 `json:"entries_invalidated"`
}

// HostMemory is the host kernel's memory management.
type HostMemory struct {
	Faults     uint64 `json:"faults"`
	HugeFaults uint64 `json:"huge_faults"`
	SwapOuts   uint64 `json:"swap_outs"`
	SwapIns    uint64 `json:"swap_ins"`
	Migrations uint64 `json:"migrations"`
	Splits     uint64 `json:"splits"`
	Collapses  uint64 `json:"collapses"`
	KSMMerged  uint64 `json:"ksm_merged"`
	COWBreaks  uint64 `json:"cow_breaks"`
	// FramesInUse at the end (guest memory and stage-2 tables).
	FramesInUse uint64 `json:"frames_in_use"`
}

// Checks are the simulator's own checks: every load against the last
// value stored (data integrity), and stage-2 and host-kernel invariants
// checked with the world stopped. Violations must be 0.
type Checks struct {
	IntegrityChecks     uint64 `json:"integrity_checks"`
	IntegrityViolations uint64 `json:"integrity_violations"`
	InvariantChecks     uint64 `json:"invariant_checks"`
	// FreedFrameChecks are the guest accesses checked for reaching a
	// freed (poisoned) host frame; a hit is an invariant violation.
	FreedFrameChecks uint64 `json:"freed_frame_checks"`
	// ShadowChecks are runs of host/nested's checker over a guest
	// hypervisor's VM (world stopped), ShadowLeavesChecked the shadow
	// leaves they checked.
	ShadowChecks        uint64   `json:"shadow_checks"`
	ShadowLeavesChecked uint64   `json:"shadow_leaves_checked"`
	InvariantViolations uint64   `json:"invariant_violations"`
	First               []string `json:"first_violations,omitempty"`
}

// Violations returns every violation.
func (c *Checks) Violations() uint64 { return c.IntegrityViolations + c.InvariantViolations }

// Sample is the state at one point of the run.
type Sample struct {
	Seconds float64 `json:"seconds"`
	// Accesses are every guest access so far, User the workloads' (arm64
	// and MIPS).
	Accesses uint64 `json:"accesses"`
	User     uint64 `json:"user_accesses"`
	Walks    uint64 `json:"walks"`
	Reads    uint64 `json:"descriptor_reads"`
	Faults   uint64 `json:"guest_faults"`
	// S2Faults are the stage-2 faults: L0's on its VMs' stage 2 and the
	// shadow faults of nested VMs' vCPUs (an L3's at both L0 and L1).
	S2Faults uint64 `json:"stage2_faults"`
	Events   uint64 `json:"host_events"`
}

// Since returns the seconds since t0.
func Since(t0 time.Time) float64 { return time.Since(t0).Seconds() }
