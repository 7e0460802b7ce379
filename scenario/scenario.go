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

// ErrNotYetAvailable marks scenario features that need nested
// virtualization, which this build does not have yet.
var ErrNotYetAvailable = errors.New("not yet available")

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
	for i := range s.VMs {
		for j := range s.VMs[i].Procs {
			p := &s.VMs[i].Procs[j]
			if p.Trace != "" && !filepath.IsAbs(p.Trace) && !strings.HasPrefix(p.Trace, trace.BuiltinPrefix) {
				p.Trace = filepath.Join(dir, p.Trace)
			}
		}
	}
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
		c.vm(fmt.Sprintf("vms[%d]", i), &s.VMs[i], uint64(h.PageSize))
		guestMem += uint64(s.VMs[i].Memory)
	}
	if c.err == nil && guestMem > uint64(h.Memory)*4 {
		c.fail("vms", "the VMs' memory (%v) is more than 4 times the host's (%v): the host would run out of frames", Size(guestMem), h.Memory)
	}
	for i := range s.MIPS {
		c.mips(fmt.Sprintf("mips[%d]", i), &s.MIPS[i])
	}
	c.rangeInt("checks.invariants", s.Checks.Invariants, 0, 1000)
}

func (c *checker) vm(path string, v *VM, hostPage uint64) {
	switch v.Kind {
	case KindGuest:
	case KindHypervisor:
		c.failErr(path+".kind", ErrNotYetAvailable, "%q: a guest hypervisor (L1) running nested VMs needs nested virtualization, which this build does not have yet", v.Kind)
		return
	default:
		c.fail(path+".kind", "%q is not %q or %q", v.Kind, KindGuest, KindHypervisor)
		return
	}
	if len(v.VMs) > 0 {
		c.failErr(path+".vms", ErrNotYetAvailable, "nested VMs need a VM of kind %q (nested virtualization), which this build does not have yet", KindHypervisor)
		return
	}
	c.rangeInt(path+".vcpus", v.VCPUs, 1, 64)
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
	g := &v.Guest
	if g.VABits < 36 || g.VABits > 48 {
		c.fail(path+".guest.va_bits", "%d: want 36 to 48", g.VABits)
	}
	if g.ASIDBits != 8 && g.ASIDBits != 16 {
		c.fail(path+".guest.asid_bits", "%d is not 8 or 16", g.ASIDBits)
	}
	c.rangeInt(path+".guest.quantum", g.Quantum, 100, 1<<30)
	c.rangeInt(path+".guest.io_every", g.IOEvery, 0, 1<<30)
	if v.Weight <= 0 || v.Weight > 1e6 || math.IsNaN(v.Weight) {
		c.fail(path+".weight", "%v: want a positive number", v.Weight)
	}
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
