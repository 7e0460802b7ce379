// Package scenario reads simulation scenarios: YAML files that set the
// machine (the host hypervisor's CPUs, memory, page size, TLBs and memory
// pressure; its VMs with their vCPUs, memory, IPA size and guest OS; MIPS
// trap-and-emulate guests), the processes and their workloads, the
// duration in accesses and the seed. Every error names the file, the line
// and the field. The schema is in docs/USAGE.md; examples are in
// examples/.
package scenario

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/nestmmu/nestmmu/trace"
	"github.com/nestmmu/nestmmu/workload"
	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the default scenario's text (what `nestmmu run`
// runs without a file).
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns the default scenario.
func Default() *Scenario {
	s, err := Parse(defaultYAML, "default.yaml")
	if err != nil {
		panic(fmt.Sprintf("scenario: the embedded default is invalid: %v", err))
	}
	return s
}

// Load reads and checks a scenario file. Trace paths are resolved
// relative to the file's directory.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	s.EachVM(func(v *VM, _ int) {
		for j := range v.Procs {
			p := &v.Procs[j]
			if p.Trace != "" && !filepath.IsAbs(p.Trace) && !strings.HasPrefix(p.Trace, trace.BuiltinPrefix) {
				p.Trace = filepath.Join(dir, p.Trace)
			}
		}
	})
	return s, nil
}

// Parse decodes and checks a scenario; file names it in errors.
func Parse(data []byte, file string) (*Scenario, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	s := &Scenario{}
	s.setDefaults()
	d := &decoder{file: file, lines: map[string]int{}}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: file, Msg: "the file is empty"}
	}
	if err := d.decode(doc.Content[0], reflect.ValueOf(s).Elem(), ""); err != nil {
		return nil, err
	}
	c := &checker{d: d}
	c.scenario(s)
	if c.err != nil {
		return nil, c.err
	}
	return s, nil
}

// checker validates a decoded scenario, reporting the first error at the
// line of the field it concerns.
type checker struct {
	d   *decoder
	err error
}

// line returns the line of path, or of its closest enclosing field.
func (c *checker) line(path string) int {
	for p := path; p != ""; {
		if l, ok := c.d.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func (c *checker) fail(path, format string, args ...any) {
	if c.err == nil {
		c.err = &Error{File: c.d.file, Line: c.line(path), Field: path, Msg: fmt.Sprintf(format, args...)}
	}
}

func (c *checker) failErr(path string, err error, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: %w", &Error{File: c.d.file, Line: c.line(path), Field: path, Msg: fmt.Sprintf(format, args...)}, err)
	}
}

func (c *checker) rangeInt(path string, v, lo, hi int) {
	if v < lo || v > hi {
		c.fail(path, "%d is out of range [%d, %d]", v, lo, hi)
	}
}

func (c *checker) pageSize(path string, s Size) {
	if s != 4096 && s != 16384 && s != 65536 {
		c.fail(path, "%v is not 4K, 16K or 64K", s)
	}
}

func (c *checker) scenario(s *Scenario) {
	if s.Accesses == 0 || s.Accesses > 1<<40 {
		c.fail("accesses", "%d: want 1 to 2^40", uint64(s.Accesses))
	}
	h := &s.Host
	c.rangeInt("host.cpus", h.CPUs, 1, 64)
	c.pageSize("host.page_size", h.PageSize)
	if h.Memory < 64<<20 || h.Memory > 64<<30 || h.Memory%(2<<20) != 0 {
		c.fail("host.memory", "%v: want a multiple of 2M from 64M to 64G", h.Memory)
	}
	if h.TLB.Sets < 1 || h.TLB.Sets&(h.TLB.Sets-1) != 0 || h.TLB.Sets > 1<<16 {
		c.fail("host.tlb.sets", "%d is not a power of two up to 65536", h.TLB.Sets)
	}
	if h.TLB.Ways < 1 || h.TLB.Ways&(h.TLB.Ways-1) != 0 || h.TLB.Ways > 64 {
		c.fail("host.tlb.ways", "%d is not a power of two up to 64", h.TLB.Ways)
	}
	if h.TLB.Micro != -1 && (h.TLB.Micro < 1 || h.TLB.Micro&(h.TLB.Micro-1) != 0 || h.TLB.Micro > 4096) {
		c.fail("host.tlb.micro", "%d is not a power of two up to 4096 (or -1: none)", h.TLB.Micro)
	}
	p := &h.Pressure
	for _, w := range []struct {
		name string
		v    float64
	}{{"rate", p.Rate}, {"swap", p.Swap}, {"migrate", p.Migrate}, {"split", p.Split}, {"collapse", p.Collapse}, {"ksm", p.KSM}, {"age", p.Age}} {
		if w.v < 0 || w.v > 1e6 {
			c.fail("host.pressure."+w.name, "%v: want 0 to 1e6", w.v)
		}
	}
	if p.Enabled && p.Swap+p.Migrate+p.Split+p.Collapse+p.KSM+p.Age == 0 {
		c.fail("host.pressure", "enabled with every event weight 0")
	}
	if len(s.VMs) == 0 && len(s.MIPS) == 0 {
		c.fail("vms", "the scenario has no VM and no MIPS guest")
	}
	if len(s.VMs) > 64 {
		c.fail("vms", "%d VMs: at most 64", len(s.VMs))
	}
	var guestMem uint64
	for i := range s.VMs {
		c.vm(fmt.Sprintf("vms[%d]", i), &s.VMs[i], uint64(h.PageSize), 1)
		guestMem += uint64(s.VMs[i].Memory)
	}
	if c.err == nil && guestMem > uint64(h.Memory)*4 {
		c.fail("vms", "the VMs' memory (%v) is more than 4 times the host's (%v): the host would run out of frames", Size(guestMem), h.Memory)
	}
	for i := range s.MIPS {
		c.mips(fmt.Sprintf("mips[%d]", i), &s.MIPS[i])
	}
	c.rangeInt("checks.invariants", s.Checks.Invariants, 0, 1000)
	if s.Checks.Interval > s.Accesses {
		c.fail("checks.interval", "%d is more than the run's %d accesses", uint64(s.Checks.Interval), uint64(s.Accesses))
	}
}

func (c *checker) vm(path string, v *VM, hostPage uint64, level int) {
	switch v.Kind {
	case KindGuest:
		if len(v.VMs) > 0 {
			c.fail(path+".vms", "only a VM of kind %q runs VMs of its own", KindHypervisor)
			return
		}
	case KindHypervisor:
		if level >= 3 {
			c.fail(path+".kind", "%q at L%d: a guest hypervisor at L2 sees no FEAT_NV, so its VMs cannot run hypervisors (no L4)", v.Kind, level)
			return
		}
	default:
		c.fail(path+".kind", "%q is not %q or %q", v.Kind, KindGuest, KindHypervisor)
		return
	}
	if v.Kind == KindHypervisor {
		if _, given := c.d.lines[path+".vcpus"]; !given && len(v.VMs) > 0 {
			v.VCPUs = len(v.VMs)
		}
	}
	c.rangeInt(path+".vcpus", v.VCPUs, 1, 64)
	if level > 1 && v.VCPUs != 1 {
		c.fail(path+".vcpus", "%d: a VM of a guest hypervisor has one vCPU", v.VCPUs)
	}
	if v.IPABits < 32 || v.IPABits > 48 {
		c.fail(path+".ipa_bits", "%d: want 32 to 48", v.IPABits)
	}
	c.pageSize(path+".guest.granule", v.Guest.Granule)
	if v.Memory < 16<<20 || v.Memory%Size(max(hostPage, uint64(v.Guest.Granule), 2<<20)) != 0 {
		c.fail(path+".memory", "%v: want a multiple of 2M (and of the page sizes) of at least 16M", v.Memory)
	}
	if c.err == nil && 0x4000_0000+uint64(v.Memory) > 1<<v.IPABits {
		c.fail(path+".memory", "%v at IPA 0x40000000 does not fit a %d-bit IPA space", v.Memory, v.IPABits)
	}
	if v.Weight <= 0 || v.Weight > 1e6 || math.IsNaN(v.Weight) {
		c.fail(path+".weight", "%v: want a positive number", v.Weight)
	}
	if v.Kind == KindHypervisor {
		c.hypervisor(path, v, hostPage, level)
		return
	}
	g := &v.Guest
	if g.VABits < 36 || g.VABits > 48 {
		c.fail(path+".guest.va_bits", "%d: want 36 to 48", g.VABits)
	}
	if g.ASIDBits != 8 && g.ASIDBits != 16 {
		c.fail(path+".guest.asid_bits", "%d is not 8 or 16", g.ASIDBits)
	}
	c.rangeInt(path+".guest.quantum", g.Quantum, 100, 1<<30)
	c.rangeInt(path+".guest.io_every", g.IOEvery, 0, 1<<30)
	if len(v.Procs) == 0 {
		c.fail(path+".processes", "the VM runs no process")
	}
	n := 0
	for i := range v.Procs {
		pp := fmt.Sprintf("%s.processes[%d]", path, i)
		c.process(pp, &v.Procs[i], v)
		n += v.Procs[i].Count
	}
	if n > 1000 {
		c.fail(path+".processes", "%d processes: at most 1000", n)
	}
}

// hypervisor checks a guest hypervisor's VM: its configuration, its VMs
// (one per vCPU), and that their memory fits its own.
func (c *checker) hypervisor(path string, v *VM, hostPage uint64, level int) {
	h := &v.Hypervisor
	hp := path + ".hypervisor"
	if h.Mode != ModeNV && h.Mode != ModeNV2 {
		c.fail(hp+".mode", "%q is not %q (FEAT_NV) or %q (FEAT_NV2)", h.Mode, ModeNV, ModeNV2)
	}
	if level > 1 && !h.E2H {
		c.fail(hp+".e2h", "a guest hypervisor at L%d must be a VHE one (E2H=1), as mainline KVM requires for recursion", level)
	}
	if level > 1 && h.ThreeStageWalk {
		c.fail(hp+".three_stage_walk", "the three-stage walk is measured for the VMs of a guest hypervisor of L0 (L1)")
	}
	c.rangeInt(hp+".shadows_per_vcpu", h.ShadowsPerVCPU, 1, 64)
	if h.Tables < 1<<20 || h.Tables%(2<<20) != 0 {
		c.fail(hp+".tables", "%v: want a multiple of 2M", h.Tables)
	}
	if len(v.Procs) > 0 {
		c.fail(path+".processes", "a guest hypervisor runs VMs (vms), not processes")
	}
	if len(v.VMs) == 0 {
		c.fail(path+".vms", "the guest hypervisor runs no VM")
	}
	if c.err == nil && len(v.VMs) != v.VCPUs {
		c.fail(path+".vcpus", "%d: the guest hypervisor runs each of its %d VMs on a vCPU of its own", v.VCPUs, len(v.VMs))
	}
	for i := range v.VMs {
		cp := fmt.Sprintf("%s.vms[%d]", path, i)
		cv := &v.VMs[i]
		c.vm(cp, cv, hostPage, level+1)
		if c.err == nil && cv.IPABits > v.IPABits {
			c.fail(cp+".ipa_bits", "%d: more than its hypervisor's own %d-bit IPA space offers (its PARange)", cv.IPABits, v.IPABits)
		}
	}
	if c.err == nil {
		if l := v.NestedLayout(); l.End > uint64(v.Memory) {
			c.fail(path+".memory", "%v does not hold the guest hypervisor's tables (%v per vCPU) and its VMs' memory: %v needed", v.Memory, h.Tables, Size(l.End))
		}
	}
}

// NestedLayout is where a guest hypervisor's VM keeps things in its RAM
// (offsets from the RAM's start, IPA 0x4000_0000): the stage-2 table
// region of each vCPU, then each of its VMs' memory (2 MiB aligned), then
// a page per VM that runs a hypervisor (its VNCR page, FEAT_NV2).
type NestedLayout struct {
	Tables []uint64
	VMs    []uint64
	VNCR   []uint64
	End    uint64
}

// NestedLayout places a "hypervisor" VM's memory.
func (v *VM) NestedLayout() NestedLayout {
	var l NestedLayout
	off := uint64(0)
	for i := 0; i < v.VCPUs; i++ {
		l.Tables = append(l.Tables, off)
		off += uint64(v.Hypervisor.Tables)
	}
	for i := range v.VMs {
		off = (off + 2<<20 - 1) &^ (2<<20 - 1)
		l.VMs = append(l.VMs, off)
		off += uint64(v.VMs[i].Memory)
	}
	for i := range v.VMs {
		if v.VMs[i].Kind == KindHypervisor {
			l.VNCR = append(l.VNCR, off)
			off += 4096
		} else {
			l.VNCR = append(l.VNCR, 0)
		}
	}
	l.End = off
	return l
}

func (c *checker) process(path string, p *Process, v *VM) {
	c.rangeInt(path+".count", p.Count, 1, 1000)
	if p.VCPU != -1 {
		c.rangeInt(path+".vcpu", p.VCPU, 0, v.VCPUs-1)
	}
	if p.Workload == "trace" {
		if p.Trace == "" {
			c.fail(path+".trace", "a trace workload needs a trace file")
		}
		if p.Format != "lackey" && p.Format != "champsim" {
			c.fail(path+".format", "%q is not lackey or champsim", p.Format)
		}
		return
	}
	spec := p.Spec(uint64(v.Guest.Granule), 0)
	if err := spec.Validate(); err != nil {
		field := "workload"
		var se *workload.SpecError
		if errors.As(err, &se) {
			field = map[string]string{"Kind": "workload", "WorkingSet": "working_set", "Writes": "writes", "Stride": "stride",
				"ZipfS": "zipf_s", "ChurnEvery": "churn_every", "ChurnPages": "churn_pages"}[se.Field]
		}
		c.fail(path+"."+field, "%s", strings.TrimPrefix(err.Error(), "workload: "))
		return
	}
	if uint64(p.WorkingSet)*uint64(p.Count) > uint64(v.Memory) {
		c.fail(path+".working_set", "%v x %d processes is more than the VM's memory (%v)", p.WorkingSet, p.Count, v.Memory)
	}
}

// Spec is the workload.Spec of a synthetic process.
func (p *Process) Spec(pageSize, seed uint64) workload.Spec {
	return workload.Spec{Kind: workload.Kind(p.Workload), WorkingSet: uint64(p.WorkingSet), Writes: float64(p.Writes),
		Stride: uint64(p.Stride), ZipfS: p.ZipfS, ChurnEvery: p.ChurnEvery, ChurnPages: p.ChurnPages, PageSize: pageSize, Seed: seed}
}

func (c *checker) mips(path string, m *MIPS) {
	c.pageSize(path+".page_size", m.PageSize)
	c.rangeInt(path+".processes", m.Processes, 1, 250)
	c.rangeInt(path+".working_set_pages", m.WorkingSet, 1, 1<<20)
	c.rangeInt(path+".quantum", m.Quantum, 1, 1<<30)
	c.rangeInt(path+".host_tlb", m.HostTLB, 2, 4096)
	if m.RAM < 1<<20 || m.RAM > 512<<20 || uint64(m.RAM)%uint64(m.PageSize) != 0 {
		c.fail(path+".ram", "%v: want 1M to 512M, a multiple of the page size", m.RAM)
	}
	// mips/guestos's own layout: 4 kernel pages, then per process a table
	// of EntryLo pairs and the working set.
	pt := uint64(m.WorkingSet/2+1) * 8 / uint64(max(m.PageSize, 1))
	if need := (4 + uint64(m.Processes)*(pt+1) + uint64(m.Processes)*uint64(m.WorkingSet)) * uint64(m.PageSize); c.err == nil && need > uint64(m.RAM) {
		c.fail(path+".ram", "%v is too small for %d processes of %d pages (%v needed)", m.RAM, m.Processes, m.WorkingSet, Size(need))
	}
	if m.Weight <= 0 || m.Weight > 1e6 || math.IsNaN(m.Weight) {
		c.fail(path+".weight", "%v: want a positive number", m.Weight)
	}
}
