package scenario

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a size in bytes, written as a number with an optional binary
// suffix: 4096, 4K, 4KiB, 256M, 256MiB, 1G, 1GiB.
type Size uint64

func (s *Size) parse(t string) error {
	v, err := parseScaled(t, 1024, "B", "byte size such as 4K, 256MiB or 1G")
	*s = Size(v)
	return err
}

// String writes the size with the largest binary suffix that divides it.
func (s Size) String() string {
	for _, u := range []struct {
		n    uint64
		name string
	}{{1 << 40, "T"}, {1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "K"}} {
		if s != 0 && uint64(s)%u.n == 0 {
			return fmt.Sprintf("%d%s", uint64(s)/u.n, u.name)
		}
	}
	return strconv.FormatUint(uint64(s), 10)
}

// Count is a number of events, written as a number with an optional
// decimal suffix: 20000000, 20_000_000, 20M, 2.5M, 1G.
type Count uint64

func (c *Count) parse(t string) error {
	v, err := parseScaled(t, 1000, "", "count such as 5000000, 5M or 2.5M")
	*c = Count(v)
	return err
}

// parseScaled parses a non-negative number with an optional K, M, G or T
// suffix (and, for sizes, an optional "iB"/"B").
func parseScaled(t string, base float64, unit, what string) (uint64, error) {
	s := strings.TrimSpace(strings.ReplaceAll(t, "_", ""))
	mult := 1.0
	if unit != "" {
		s = strings.TrimSuffix(strings.TrimSuffix(s, "iB"), unit)
	}
	if n := len(s); n > 0 {
		switch strings.ToUpper(s[n-1:]) {
		case "K":
			mult = base
		case "M":
			mult = base * base
		case "G":
			mult = base * base * base
		case "T":
			mult = base * base * base * base
		}
		if mult != 1 {
			s = s[:n-1]
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f*mult >= 1<<63 {
		return 0, fmt.Errorf("%q is not a %s", t, what)
	}
	v := f * mult
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("%q is not a whole number", t)
	}
	return uint64(v), nil
}

// Fraction is a share between 0 and 1, written as 0.3 or 30%.
type Fraction float64

func (f *Fraction) parse(t string) error {
	s := strings.TrimSpace(t)
	scale := 1.0
	if strings.HasSuffix(s, "%") {
		s, scale = strings.TrimSuffix(s, "%"), 100
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v/scale > 1 {
		return fmt.Errorf("%q is not a fraction between 0 and 1 (or 0%% and 100%%)", t)
	}
	*f = Fraction(v / scale)
	return nil
}

// Scenario is a simulation: the machine (host, VMs, MIPS guests), what runs
// on it, how long, and the seed. See docs/USAGE.md for the schema.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Seed seeds every random choice (workloads, host events).
	Seed uint64 `yaml:"seed"`
	// Accesses is the duration: user-level guest accesses, shared among
	// the vCPUs and MIPS guests by their weights.
	Accesses Count  `yaml:"accesses"`
	Host     Host   `yaml:"host"`
	VMs      []VM   `yaml:"vms"`
	MIPS     []MIPS `yaml:"mips"`
	Checks   Checks `yaml:"checks"`
}

// Clone returns a deep copy of the scenario (its VMs, nested VMs and
// processes), so that a change to one copy stays in it.
func (s *Scenario) Clone() *Scenario {
	c := *s
	c.VMs = nil
	for i := range s.VMs {
		c.VMs = append(c.VMs, s.VMs[i].Clone())
	}
	c.MIPS = append([]MIPS(nil), s.MIPS...)
	return &c
}

// EachVM calls f for every VM at every level (1 for L0's VMs), depth
// first.
func (s *Scenario) EachVM(f func(v *VM, level int)) {
	for i := range s.VMs {
		s.VMs[i].Walk(1, f)
	}
}

func (s *Scenario) setDefaults() {
	s.Seed = 1
	s.Accesses = 20_000_000
	s.Host.setDefaults()
	s.Checks.setDefaults()
}

// Host is the host hypervisor (L0) and its machine.
type Host struct {
	// CPUs is the number of physical CPUs (worker goroutines).
	CPUs int `yaml:"cpus"`
	// Memory is the host's physical memory.
	Memory Size `yaml:"memory"`
	// PageSize is the host page size: 4K, 16K or 64K; stage 2 uses it as
	// its granule.
	PageSize Size `yaml:"page_size"`
	// TLB sizes each physical CPU's TLB.
	TLB TLB `yaml:"tlb"`
	// THP backs VM memory with transparent huge pages, which the
	// hypervisor maps as 2 MiB stage-2 blocks.
	THP bool `yaml:"thp"`
	// KSM marks VM memory mergeable (the pressure driver's KSM scans
	// merge identical pages).
	KSM bool `yaml:"ksm"`
	// Swap bounds the host's swap (0: unbounded).
	Swap     Size     `yaml:"swap"`
	Pressure Pressure `yaml:"pressure"`
}

func (h *Host) setDefaults() {
	h.CPUs, h.Memory, h.PageSize, h.THP, h.KSM = 2, 1<<30, 4096, true, true
	h.TLB.setDefaults()
	h.Pressure.setDefaults()
}

// TLB is a TLB's geometry.
type TLB struct {
	Sets  int `yaml:"sets"`
	Ways  int `yaml:"ways"`
	Micro int `yaml:"micro"`
}

func (t *TLB) setDefaults() { t.Sets, t.Ways, t.Micro = 256, 4, 16 }

// Pressure is the host's memory-pressure driver: events on random pages
// of the VMs' memory, at a rate and in a mix.
type Pressure struct {
	Enabled bool `yaml:"enabled"`
	// Rate is events per million guest accesses.
	Rate float64 `yaml:"rate"`
	// Weights of the events.
	Swap     float64 `yaml:"swap"`
	Migrate  float64 `yaml:"migrate"`
	Split    float64 `yaml:"split"`
	Collapse float64 `yaml:"collapse"`
	KSM      float64 `yaml:"ksm"`
	Age      float64 `yaml:"age"`
}

func (p *Pressure) setDefaults() {
	*p = Pressure{Enabled: true, Rate: 100, Swap: 35, Migrate: 25, Split: 10, Collapse: 5, KSM: 10, Age: 15}
}

// VM kinds.
const (
	// KindGuest is a VM that runs a guest OS and its processes.
	KindGuest = "guest"
	// KindHypervisor is a VM that runs a guest hypervisor (L1) with
	// nested VMs of its own.
	KindHypervisor = "hypervisor"
)

// VM is a virtual machine: of the host hypervisor (L0) when listed in the
// scenario's vms, of a guest hypervisor when listed in a "hypervisor" VM's
// vms (nested virtualization: L2, and L3 under an L2 hypervisor).
type VM struct {
	Name string `yaml:"name"`
	// Kind is "guest" (a guest OS) or "hypervisor" (a guest hypervisor
	// running the VMs listed in vms: nested virtualization).
	Kind  string `yaml:"kind"`
	VCPUs int    `yaml:"vcpus"`
	// Memory is the guest's RAM (one memslot at IPA 0x4000_0000). A
	// guest hypervisor's VMs' memory is carved from its own.
	Memory  Size      `yaml:"memory"`
	IPABits uint      `yaml:"ipa_bits"`
	Guest   Guest     `yaml:"guest"`
	Procs   []Process `yaml:"processes"`
	// Hypervisor configures the guest hypervisor of a "hypervisor" VM.
	Hypervisor Hypervisor `yaml:"hypervisor"`
	// VMs are the nested VMs of a "hypervisor" VM, each run on a vCPU
	// of the hypervisor's own (the i-th on vCPU i).
	VMs []VM `yaml:"vms"`
	// Weight is each vCPU's share of the accesses.
	Weight float64 `yaml:"weight"`
}

func (v *VM) setDefaults() {
	v.Kind, v.VCPUs, v.Memory, v.IPABits, v.Weight = KindGuest, 1, 256<<20, 40, 1
	v.Guest.setDefaults()
	v.Hypervisor.setDefaults()
}

// Clone returns a deep copy of the VM (its processes and nested VMs).
func (v *VM) Clone() VM {
	c := *v
	c.Procs = append([]Process(nil), v.Procs...)
	c.VMs = nil
	for i := range v.VMs {
		c.VMs = append(c.VMs, v.VMs[i].Clone())
	}
	return c
}

// Walk calls f for the VM and every VM nested in it, depth first, with
// its level (the VM's own level given).
func (v *VM) Walk(level int, f func(v *VM, level int)) {
	f(v, level)
	for i := range v.VMs {
		v.VMs[i].Walk(level+1, f)
	}
}

// Hypervisor modes: how a guest hypervisor's EL2 register accesses reach
// the hypervisor below it.
const (
	// ModeNV is FEAT_NV: every EL2 register access traps.
	ModeNV = "nv"
	// ModeNV2 is FEAT_NV2: most are loads and stores of the VNCR page.
	ModeNV2 = "nv2"
)

// Hypervisor is a guest hypervisor's configuration (a "hypervisor" VM).
type Hypervisor struct {
	// Mode is "nv" (FEAT_NV) or "nv2" (FEAT_NV2).
	Mode string `yaml:"mode"`
	// E2H runs the guest hypervisor in the EL2&0 regime (a VHE
	// hypervisor); false: the EL2 regime (run with HCR_EL2.NV1). A guest
	// hypervisor at L2 must be a VHE one.
	E2H bool `yaml:"e2h"`
	// ReverseMap keeps L0's reverse map from the guest hypervisor's IPAs
	// to the shadow entries derived from them (false: mainline KVM's
	// behaviour, every shadow emptied or write-protected whole by a host
	// change). For a guest hypervisor of L0 (L1).
	ReverseMap bool `yaml:"reverse_map"`
	// ShadowsPerVCPU sizes L0's pool of shadow stage 2s (L1).
	ShadowsPerVCPU int `yaml:"shadows_per_vcpu"`
	// Tables is the region of its memory, per vCPU, for its stage-2
	// tables (its VMs', and the shadows it keeps for an L2 hypervisor).
	Tables Size `yaml:"tables"`
	// ThreeStageWalk also walks every TLB miss of its VMs' processes with
	// the software three-stage walk (no shadow) and reports its descriptor
	// reads: what a miss would cost without shadow stage 2 (L1).
	ThreeStageWalk bool `yaml:"three_stage_walk"`
}

func (h *Hypervisor) setDefaults() {
	*h = Hypervisor{Mode: ModeNV2, E2H: true, ReverseMap: true, ShadowsPerVCPU: 2, Tables: 8 << 20}
}

// Guest is the guest OS's configuration.
type Guest struct {
	// Granule is the stage-1 granule: 4K, 16K or 64K.
	Granule Size `yaml:"granule"`
	// VABits is the virtual address size of each range (TTBR0, TTBR1).
	VABits uint `yaml:"va_bits"`
	// ASIDBits is 8 or 16.
	ASIDBits uint `yaml:"asid_bits"`
	// LinearMapBlocks maps the kernel's linear map with blocks.
	LinearMapBlocks bool `yaml:"linear_map_blocks"`
	// ZeroPage maps read faults to the shared zero page.
	ZeroPage bool `yaml:"zero_page"`
	// Quantum is the time slice in accesses: a timer interrupt every
	// quantum, switching processes round-robin.
	Quantum int `yaml:"quantum"`
	// IOEvery is the accesses between a process's writes to the guest's
	// device (an MMIO exit each); 0: none.
	IOEvery int `yaml:"io_every"`
}

func (g *Guest) setDefaults() {
	*g = Guest{Granule: 4096, VABits: 48, ASIDBits: 16, LinearMapBlocks: true, ZeroPage: true, Quantum: 20000, IOEvery: 100000}
}

// Process is one or more guest processes with a workload.
type Process struct {
	// Count is how many processes run this workload.
	Count int `yaml:"count"`
	// Workload is a synthetic pattern (sequential, random, zipf,
	// pointer-chase, gups, fork-churn, mmap-churn) or "trace".
	Workload   string   `yaml:"workload"`
	WorkingSet Size     `yaml:"working_set"`
	Writes     Fraction `yaml:"writes"`
	Stride     Size     `yaml:"stride"`
	ZipfS      float64  `yaml:"zipf_s"`
	ChurnEvery int      `yaml:"churn_every"`
	ChurnPages int      `yaml:"churn_pages"`
	// Trace is the trace file of a "trace" workload (relative to the
	// scenario file); Format is "lackey" or "champsim".
	Trace  string `yaml:"trace"`
	Format string `yaml:"format"`
	// VCPU pins the processes to one vCPU (default: spread round-robin).
	VCPU int `yaml:"vcpu"`
}

func (p *Process) setDefaults() {
	*p = Process{Count: 1, WorkingSet: 16 << 20, Writes: 0.3, Format: "lackey", VCPU: -1}
}

// MIPS is a MIPS trap-and-emulate guest (docs/MIPS.md).
type MIPS struct {
	Name     string `yaml:"name"`
	PageSize Size   `yaml:"page_size"`
	RAM      Size   `yaml:"ram"`
	// Processes, each with WorkingSet pages.
	Processes  int      `yaml:"processes"`
	WorkingSet int      `yaml:"working_set_pages"`
	Quantum    int      `yaml:"quantum"`
	Writes     Fraction `yaml:"writes"`
	Random     Fraction `yaml:"random"`
	HostTLB    int      `yaml:"host_tlb"`
	// GVATables selects KVM's GVA page tables with the fast refill;
	// false is the pre-series path (the guest TLB scanned linearly on
	// every host TLB refill).
	GVATables bool `yaml:"gva_tables"`
	// DirtyLog selects Linux 4.11's dirty logging (pages mapped clean
	// until written, TLB Modified exits) instead of the series' own
	// TLB Modified semantics.
	DirtyLog bool    `yaml:"dirty_log"`
	Weight   float64 `yaml:"weight"`
}

func (m *MIPS) setDefaults() {
	*m = MIPS{PageSize: 4096, RAM: 32 << 20, Processes: 4, WorkingSet: 96, Quantum: 500, Writes: 0.3, Random: 0.3, HostTLB: 64, GVATables: true, Weight: 1}
}

// Checks configures the simulator's own checks.
type Checks struct {
	// Integrity checks every value a guest loads against the last value
	// stored there.
	Integrity bool `yaml:"integrity"`
	// Invariants is how many times during the run the world is stopped
	// and the stage-2, shadow and host-kernel invariants are checked (once
	// more at the end).
	Invariants int `yaml:"invariants"`
	// Interval, when set, checks them every so many user accesses instead
	// (Invariants is then ignored).
	Interval Count `yaml:"interval"`
	// FreedFrames poisons host frames when they are freed and checks
	// every guest access and table walk for one that reaches a free frame
	// (through a stale stage-2 or TLB entry).
	FreedFrames bool `yaml:"freed_frames"`
}

func (c *Checks) setDefaults() { c.Integrity, c.Invariants, c.FreedFrames = true, 4, true }

// UnmarshalText parses a count as a scenario does (for flags).
func (c *Count) UnmarshalText(b []byte) error { return c.parse(string(b)) }
