package nested_test

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/conform"
	"github.com/nestmmu/nestmmu/conform/qemu"
	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// The AT differential test one level down: the generated state is that of
// a guest hypervisor L2 which L1 runs (L0 -> L1 -> L2). L2's memory (L2
// IPA = L1 IPA, one slot of L1's VM A over the case RAM) and registers
// are written by L2's own stores and MSRs at its virtual EL2; each AT L2
// executes there traps (L1's HCR_EL2.NV and AT) to L0, which forwards it
// to L1, whose engine emulates it as L0 emulates L1's — its fast path an
// AT of L1's own that traps to L0 again, or a software walk over L2's
// memory through L1's stage 2 — and L2 must read the PAR_EL1 the at-json
// document of the same state gives at a real EL2, or take the same
// exception. L2 is a VHE guest hypervisor: the document is run with
// HCR_EL2.E2H=1, which L2's HCR_EL2 reads.

const (
	recATL1Own = 0x6000_0000 // L1's own memory: its tables, vector, L2's VNCR page
	recATVNCR  = 0x6100_0000
)

// recATCases is the number of generated states (NESTMMU_RECURSION_AT_CASES).
func recATCases(t *testing.T) int {
	n := 60
	if testing.Short() || raceBuild {
		n = 20
	}
	if s := os.Getenv("NESTMMU_RECURSION_AT_CASES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("NESTMMU_RECURSION_AT_CASES=%q", s)
		}
		n = v
	}
	return n
}

type recATRig struct {
	host *kvm.Host
	kvm  *kvm.VM
	v    *nested.VCPU
	e    *nested.EL2VCPU
	l2   *nested.L2CPU
}

func newRecATRig(t testing.TB, m01 nested.Mode, m12 nested.Mode, path nested.ATPath) *recATRig {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	h, err := kvm.NewHost(kvm.Config{CPUs: 1, MemBytes: 512 << 20})
	must(err)
	vm, err := h.NewVM(kvm.VMConfig{IPABits: 40})
	must(err)
	_, err = vm.AddMemory(0, mem.IPA(atCaseRAM.Base), atCaseRAM.Size, 0, 0)
	must(err)
	_, err = vm.AddMemory(1, recATL1Own, 32<<20, 0, 0)
	must(err)
	kv, err := vm.NewVCPU(0)
	must(err)
	nvm, err := nested.New(vm, nested.Config{Mode: m01, E2H: true})
	must(err)
	v, err := nvm.NewVCPU(kv, nil)
	must(err)
	must(v.LoadCPU(0))
	t.Cleanup(func() {
		_ = v.PutCPU()
		_ = nvm.Close()
		_ = vm.Destroy()
		_ = h.Close()
	})
	hyp, err := guesthyp.Boot(v, guesthyp.Config{E2H: true, Tables: recATL1Own, TablesSize: 16 << 20, VBAR: recATL1Own + 0x100_0800 + 0x1000})
	must(err)
	v.SetGuestHypervisor(hyp)
	a, err := hyp.NewVM(1)
	must(err)
	must(a.AddSlot(nested.NestedIPA(atCaseRAM.Base), mem.IPA(atCaseRAM.Base), atCaseRAM.Size))
	e, err := a.EnableNested(nested.EL2Config{Mode: m12, VNCR: recATVNCR})
	must(err)
	e.SetATPath(path)
	must(hyp.Run(a))
	if !v.InL2() || e.InGuest() {
		t.Fatal("L1 did not enter L2 at its virtual EL2")
	}
	return &recATRig{host: h, kvm: vm, v: v, e: e, l2: v.L2()}
}

// setup writes the case's memory with L2's stores and its registers with
// L2's MSRs (HCR_EL2 with E2H), SCTLR_EL2 last.
func (r *recATRig) setup(t testing.TB, q *qemu.Case) {
	t.Helper()
	addrs := make([]uint64, 0, len(q.Mem))
	for a := range q.Mem {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	c := r.l2
	if err := c.MSR(cpu.SCTLR_EL2, q.Regs["SCTLR_EL2"]&^1); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if err := c.Store(mem.VA(a), 8, q.Mem[a]); err != nil {
			t.Fatalf("L2 store %#x: %v", a, err)
		}
	}
	for _, s := range []struct {
		r    cpu.SysReg
		name string
	}{{cpu.HCR_EL2, "HCR_EL2"}, {cpu.VTCR_EL2, "VTCR_EL2"}, {cpu.VTTBR_EL2, "VTTBR_EL2"},
		{cpu.SCTLR_EL12, "SCTLR_EL1"}, {cpu.TCR_EL12, "TCR_EL1"}, {cpu.TTBR0_EL12, "TTBR0_EL1"},
		{cpu.TTBR1_EL12, "TTBR1_EL1"}, {cpu.MAIR_EL12, "MAIR_EL1"},
		{cpu.TCR_EL2, "TCR_EL2"}, {cpu.TTBR0_EL2, "TTBR0_EL2"}, {cpu.TTBR1_EL2, "TTBR1_EL2"}, {cpu.MAIR_EL2, "MAIR_EL2"},
		{cpu.SCTLR_EL2, "SCTLR_EL2"}} {
		x := q.Regs[s.name]
		if s.r == cpu.HCR_EL2 {
			x |= uint64(sysreg.HCR_E2H)
		}
		if err := c.MSR(s.r, x); err != nil {
			t.Fatalf("L2's MSR %v: %v", s.r, err)
		}
	}
}

// doc is the at-json document of the case as L2 sees it (HCR_EL2.E2H
// reads 1).
func (r *recATRig) doc(t testing.TB, q *qemu.Case, par uint64) []byte {
	t.Helper()
	pan := 0
	if q.PAN {
		pan = 1
	}
	return caseDoc(t, q, func(a uint64) uint64 { return r.word(t, a) }, r.e.IDRegs(), uint64(sysreg.DefaultISAR2), 2, pan, par, sysreg.HCR_E2H)
}

func (r *recATRig) word(t testing.TB, a uint64) uint64 {
	t.Helper()
	s := r.kvm.Lookup(mem.IPA(a))
	x, err := r.kvm.AddressSpace().Read(s.HVAOf(mem.IPA(a)), 8)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestRecursionATDifferential: see the comment above; each generated state
// with L1's engine forcing each path, under NV and NV2 at both levels.
func TestRecursionATDifferential(t *testing.T) {
	n := recATCases(t)
	var fast, soft [3]uint64
	var l1ATs uint64
	taken, i := 0, 0
	// n states, and more (up to 200) until one made L2's AT take an
	// exception: the short run's first states take none.
	for ; i < n || taken == 0 && i < max(n, 200); i++ {
		c := conform.GenerateOne(20261, i)
		m := recModes[i%4]
		for pi, path := range []nested.ATPath{nested.ATSoftware, nested.ATHardware, nested.ATAuto} {
			st, l1, x := runRecATCase(t, &c, m.m01, m.m12, path)
			taken += x
			fast[pi] += st.ATFast
			soft[pi] += st.ATSoftware
			l1ATs += l1
		}
	}
	t.Logf("%d states; L2's ATs answered by L1's fast path / software walk: software %d/%d, hardware %d/%d, auto %d/%d (%d exceptions taken); L1's own ATs emulated by L0: %d",
		i, fast[0], soft[0], fast[1], soft[1], fast[2], soft[2], taken, l1ATs)
	if taken == 0 {
		t.Error("no state made L2's AT take an exception")
	}
	if fast[0] != 0 || fast[1] == 0 || fast[2] == 0 || soft[1]+fast[1] != soft[0] {
		t.Errorf("paths: software %d/%d, hardware %d/%d, auto %d/%d", fast[0], soft[0], fast[1], soft[1], fast[2], soft[2])
	}
}

func runRecATCase(t *testing.T, c *conform.Case, m01, m12 nested.Mode, path nested.ATPath) (nested.EL2Stats, uint64, int) {
	t.Helper()
	q := &c.Q
	r := newRecATRig(t, m01, m12, path)
	r.setup(t, q)
	ctx := fmt.Sprintf("case %s (%s) L1=%v/L2=%v/%v", c.ID, c.Kind, m01, m12, path)
	par, err := r.l2.MRS(cpu.PAR_EL1)
	if err != nil {
		t.Fatal(err)
	}
	doc := r.doc(t, q, par)
	want, m := runDoc(t, doc)
	pe := r.v.PE()
	before := r.e.Stats()
	taken := 0
	checkATs(t, ctx, doc, q, want, m, r.l2, pe, func(a uint64) uint64 { return r.word(t, a) }, "L2", func(i int, atPC mem.VA, w at.Result) {
		taken++
		// At L2's vector (VBAR_EL2 0 + 0x200: from EL2 with SP_EL2), its
		// ELR_EL2 the AT, ESR_EL2, FAR_EL2 and HPFAR_EL2 as at-json reports
		// them (HPFAR UNKNOWN where not IPAValid).
		if pe.PC != 0x200 {
			t.Fatalf("%s op %d: L2 at %#x, want its vector 0x200", ctx, i, uint64(pe.PC))
		}
		var got [4]uint64
		for k, reg := range []cpu.SysReg{cpu.ESR_EL2, cpu.FAR_EL2, cpu.HPFAR_EL2, cpu.ELR_EL2} {
			var err error
			if got[k], err = r.l2.MRS(reg); err != nil {
				t.Fatal(err)
			}
		}
		wantHPFAR := nested.HPFARUnknown
		if w.Exception.HPFARValid {
			wantHPFAR = uint64(w.Exception.HPFAR)
		}
		if got[3] != uint64(atPC) {
			t.Fatalf("%s op %d: L2's ELR_EL2 %#x, want the AT at %#x", ctx, i, got[3], uint64(atPC))
		}
		if got[0] != uint64(w.Exception.ESR) || (w.Exception.Kind == at.DataAbort && (got[1] != w.Exception.FAR || got[2] != wantHPFAR)) {
			t.Fatalf("%s op %d: L2 reads ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x, at-json %v (HPFAR %#x)\n%s", ctx, i, got[0], got[1], got[2], w.Exception, wantHPFAR, doc)
		}
		// L2's handler (none in the model) returns to the next instruction.
		if err := r.resume(t, mem.VA(got[3]+4)); err != nil {
			t.Fatal(err)
		}
	})
	st := r.e.Stats()
	st.ATFast -= before.ATFast
	st.ATSoftware -= before.ATSoftware
	return st, r.v.Stats().ATTraps, taken
}

// resume returns L2 from its exception vector to pc: its ERET with
// ELR_EL2 = pc (and the SPSR_EL2 the exception saved), trapped and
// emulated by L1.
func (r *recATRig) resume(t testing.TB, pc mem.VA) error {
	t.Helper()
	if err := r.l2.MSR(cpu.ELR_EL2, uint64(pc)); err != nil {
		return err
	}
	return r.l2.ERET()
}
