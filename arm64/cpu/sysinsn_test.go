package cpu_test

import (
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// sysRegSpec is what the Arm ARM says of one register: its name, its
// MRS/MSR encoding (op0, op1, CRn, CRm, op2, from the register's
// "Accessing" section) and the storage it names.
type sysRegSpec struct {
	name                    string
	op0, op1, crn, crm, op2 uint8
	// home is the register the name accesses from EL2 with E2H=0 (or, for
	// the *_EL12 aliases, with E2H=1): the storage of the PE it reaches.
	home func(pe *cpu.PE) *uint64
	// e2h is the storage the name reaches at EL2 with HCR_EL2.E2H=1
	// (FEAT_VHE redirection of the *_EL1 names to the *_EL2 registers).
	e2h  func(pe *cpu.PE) *uint64
	el1  bool // accessible at EL1 (an EL1 register)
	tvm  bool // trapped by HCR_EL2.TVM (writes) and TRVM (reads) at EL1
	id   bool // read-only ID register (group 3)
	el12 bool // an *_EL12 alias
}

func u64(p interface{}) *uint64 {
	switch v := p.(type) {
	case *sysreg.SCTLR:
		return (*uint64)(v)
	case *sysreg.TCR:
		return (*uint64)(v)
	case *sysreg.TTBR:
		return (*uint64)(v)
	case *sysreg.MAIR:
		return (*uint64)(v)
	case *sysreg.ESR:
		return (*uint64)(v)
	case *sysreg.PAR:
		return (*uint64)(v)
	case *sysreg.HCR:
		return (*uint64)(v)
	case *sysreg.VTCR:
		return (*uint64)(v)
	case *sysreg.VTTBR:
		return (*uint64)(v)
	case *sysreg.HPFAR:
		return (*uint64)(v)
	case *sysreg.MMFR0:
		return (*uint64)(v)
	case *sysreg.MMFR1:
		return (*uint64)(v)
	case *sysreg.MMFR2:
		return (*uint64)(v)
	case *uint64:
		return v
	}
	panic("unknown register type")
}

func sysRegSpecs() []sysRegSpec {
	var (
		sctlr1 = func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.SCTLR_EL1) }
		tcr1   = func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.TCR_EL1) }
		ttbr01 = func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.TTBR0_EL1) }
		ttbr11 = func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.TTBR1_EL1) }
		mair1  = func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.MAIR_EL1) }
		esr1   = func(pe *cpu.PE) *uint64 { return u64(&pe.ESR[1]) }
		far1   = func(pe *cpu.PE) *uint64 { return &pe.FAR[1] }
		sctlr2 = func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.SCTLR_EL2) }
		tcr2   = func(pe *cpu.PE) *uint64 { return &pe.Regs.TCR_EL2 }
		ttbr02 = func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.TTBR0_EL2) }
		ttbr12 = func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.TTBR1_EL2) }
		mair2  = func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.MAIR_EL2) }
		esr2   = func(pe *cpu.PE) *uint64 { return u64(&pe.ESR[2]) }
		far2   = func(pe *cpu.PE) *uint64 { return &pe.FAR[2] }
		par    = func(pe *cpu.PE) *uint64 { return u64(&pe.PAR) }
	)
	same := func(f func(*cpu.PE) *uint64) (func(*cpu.PE) *uint64, func(*cpu.PE) *uint64) { return f, f }
	el1 := func(name string, crn, crm, op2 uint8, home, e2h func(*cpu.PE) *uint64, tvm bool) sysRegSpec {
		return sysRegSpec{name: name, op0: 3, op1: 0, crn: crn, crm: crm, op2: op2, home: home, e2h: e2h, el1: true, tvm: tvm}
	}
	el2 := func(name string, crn, crm, op2 uint8, f func(*cpu.PE) *uint64) sysRegSpec {
		return sysRegSpec{name: name, op0: 3, op1: 4, crn: crn, crm: crm, op2: op2, home: f, e2h: f}
	}
	el12 := func(name string, crn, crm, op2 uint8, f func(*cpu.PE) *uint64) sysRegSpec {
		return sysRegSpec{name: name, op0: 3, op1: 5, crn: crn, crm: crm, op2: op2, home: f, e2h: f, el12: true}
	}
	id := func(name string, op2 uint8, f func(*cpu.PE) *uint64) sysRegSpec {
		return sysRegSpec{name: name, op0: 3, op1: 0, crn: 0, crm: 7, op2: op2, home: f, e2h: f, el1: true, id: true}
	}
	p1, p2 := same(par)
	return []sysRegSpec{
		el1("SCTLR_EL1", 1, 0, 0, sctlr1, sctlr2, true),
		el1("TCR_EL1", 2, 0, 2, tcr1, tcr2, true),
		el1("TTBR0_EL1", 2, 0, 0, ttbr01, ttbr02, true),
		el1("TTBR1_EL1", 2, 0, 1, ttbr11, ttbr12, true),
		el1("MAIR_EL1", 10, 2, 0, mair1, mair2, true),
		el1("ESR_EL1", 5, 2, 0, esr1, esr2, true),
		el1("FAR_EL1", 6, 0, 0, far1, far2, true),
		// PAR_EL1 has no EL2 counterpart: not redirected, not TVM-trapped.
		el1("PAR_EL1", 7, 4, 0, p1, p2, false),
		el2("SCTLR_EL2", 1, 0, 0, sctlr2),
		el2("TCR_EL2", 2, 0, 2, tcr2),
		el2("TTBR0_EL2", 2, 0, 0, ttbr02),
		el2("TTBR1_EL2", 2, 0, 1, ttbr12),
		el2("MAIR_EL2", 10, 2, 0, mair2),
		el2("HCR_EL2", 1, 1, 0, func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.HCR_EL2) }),
		el2("VTCR_EL2", 2, 1, 2, func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.VTCR_EL2) }),
		el2("VTTBR_EL2", 2, 1, 0, func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.VTTBR_EL2) }),
		el2("ESR_EL2", 5, 2, 0, esr2),
		el2("FAR_EL2", 6, 0, 0, far2),
		el2("HPFAR_EL2", 6, 0, 4, func(pe *cpu.PE) *uint64 { return u64(&pe.HPFAR) }),
		el12("SCTLR_EL12", 1, 0, 0, sctlr1),
		el12("TCR_EL12", 2, 0, 2, tcr1),
		el12("TTBR0_EL12", 2, 0, 0, ttbr01),
		el12("TTBR1_EL12", 2, 0, 1, ttbr11),
		el12("MAIR_EL12", 10, 2, 0, mair1),
		el12("ESR_EL12", 5, 2, 0, esr1),
		el12("FAR_EL12", 6, 0, 0, far1),
		id("ID_AA64MMFR0_EL1", 0, func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.MMFR0) }),
		id("ID_AA64MMFR1_EL1", 1, func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.MMFR1) }),
		id("ID_AA64MMFR2_EL1", 2, func(pe *cpu.PE) *uint64 { return u64(&pe.Regs.MMFR2) }),
	}
}

// sysISS is the ISS of a trapped MSR/MRS/SYS (EC 0x18): Op0 [21:20], Op2
// [19:17], Op1 [16:14], CRn [13:10], Rt [9:5], CRm [4:1], Direction [0]
// (1 for a read).
func sysISS(op0, op1, crn, crm, op2, rt uint8, read bool) uint64 {
	v := uint64(op0)<<20 | uint64(op2)<<17 | uint64(op1)<<14 | uint64(crn)<<10 | uint64(rt)<<5 | uint64(crm)<<1
	if read {
		v |= 1
	}
	return v
}

const undefESR = il // EC 0x00 (Unknown reason), IL=1, ISS 0

func TestParseSysReg(t *testing.T) {
	specs := sysRegSpecs()
	seen := map[cpu.SysReg]bool{}
	for _, s := range specs {
		for _, name := range []string{s.name, strings.ToLower(s.name)} {
			r, err := cpu.ParseSysReg(name)
			if err != nil {
				t.Errorf("ParseSysReg(%q): %v", name, err)
				continue
			}
			if r.String() != s.name {
				t.Errorf("ParseSysReg(%q).String() = %q", name, r.String())
			}
			seen[r] = true
		}
	}
	if len(seen) != len(specs) {
		t.Errorf("%d distinct registers for %d names", len(seen), len(specs))
	}
	for _, bad := range []string{"", "SCTLR_EL3", "TTBR2_EL1", "SCTLR EL1", "HCR_EL12", "ID_AA64MMFR3_EL1", " TCR_EL1"} {
		r, err := cpu.ParseSysReg(bad)
		if err == nil {
			t.Errorf("ParseSysReg(%q) = %s, want an error", bad, r)
			continue
		}
		if !strings.Contains(err.Error(), "\""+bad+"\"") {
			t.Errorf("ParseSysReg(%q): error %q does not name the input", bad, err)
		}
	}
	if s := cpu.SysReg(200).String(); s != "SysReg(200)" {
		t.Errorf("%q", s)
	}
}

// Every register reaches its storage with MSR and MRS at EL2 (E2H=0;
// the *_EL12 aliases with E2H=1), and at EL1 for the EL1 registers.
func TestSysRegStorage(t *testing.T) {
	for _, s := range sysRegSpecs() {
		r, _ := cpu.ParseSysReg(s.name)
		pe := cpu.New(0, vmsa.DefaultRegs(), 2, nil, nil)
		pe.Regs.HCR_EL2 = sysreg.HCR_RW
		if s.el12 {
			pe.Regs.HCR_EL2 |= sysreg.HCR_E2H
		}
		const v = 0x0123_4567_89ab_cdef
		want := uint64(v)
		if s.name == "HCR_EL2" {
			want = uint64(pe.Regs.HCR_EL2) | 1<<1 // keep E2H=0
		}
		if s.id {
			// No MSR encoding: UNDEFINED, the register unchanged.
			old := *s.home(pe)
			if e := pe.MSR(r, 3, v); e.Kind != cpu.Undefined || uint64(e.ESR) != undefESR || e.TargetEL != 2 {
				t.Errorf("MSR %s: %s", s.name, e)
			}
			_ = pe.ERET()
			pe.EL = 2
			if *s.home(pe) != old {
				t.Errorf("MSR %s changed it", s.name)
			}
			want = old
		} else if e := pe.MSR(r, 3, want); e.Taken() {
			t.Errorf("MSR %s at EL2: %s", s.name, e)
			continue
		}
		if got := *s.home(pe); got != want {
			t.Errorf("MSR %s at EL2: storage holds %#x, want %#x", s.name, got, want)
		}
		got, e := pe.MRS(r, 4)
		if e.Taken() || got != want {
			t.Errorf("MRS %s at EL2: %#x %s", s.name, got, e)
		}
		if !s.el1 || s.id {
			continue
		}
		pe = cpu.New(0, vmsa.DefaultRegs(), 1, nil, nil)
		if e := pe.MSR(r, 0, v); e.Taken() || *s.home(pe) != v {
			t.Errorf("MSR %s at EL1: %s, storage %#x", s.name, e, *s.home(pe))
		}
		if got, e := pe.MRS(r, 0); e.Taken() || got != v {
			t.Errorf("MRS %s at EL1: %#x %s", s.name, got, e)
		}
	}
}

// FEAT_VHE: at EL2 with HCR_EL2.E2H=1 the *_EL1 names access the *_EL2
// registers (PAR_EL1 excepted) and the *_EL12 names the EL1 registers;
// with E2H=0 the *_EL12 names are UNDEFINED. At EL1 the *_EL1 names are
// never redirected.
func TestE2HRedirection(t *testing.T) {
	for _, s := range sysRegSpecs() {
		if s.id || (!s.el1 && !s.el12) {
			continue
		}
		r, _ := cpu.ParseSysReg(s.name)
		for _, e2h := range []bool{false, true} {
			pe := cpu.New(0, vmsa.DefaultRegs(), 2, nil, nil)
			pe.Regs.HCR_EL2 = sysreg.HCR_RW
			if e2h {
				pe.Regs.HCR_EL2 |= sysreg.HCR_E2H
			}
			const v = 0xfeed_0000_0000_1000
			e := pe.MSR(r, 7, v)
			if s.el12 && !e2h {
				if e.Kind != cpu.Undefined || e.TargetEL != 2 || uint64(e.ESR) != undefESR {
					t.Errorf("MSR %s E2H=0: %s, want UNDEFINED", s.name, e)
				}
				_ = pe.ERET()
				pe.EL = 2
				if _, e := pe.MRS(r, 7); e.Kind != cpu.Undefined {
					t.Errorf("MRS %s E2H=0: %s, want UNDEFINED", s.name, e)
				}
				continue
			}
			if e.Taken() {
				t.Errorf("MSR %s E2H=%v: %s", s.name, e2h, e)
				continue
			}
			where := s.home
			if e2h {
				where = s.e2h
			}
			if *where(pe) != v {
				t.Errorf("MSR %s E2H=%v: not in the expected register", s.name, e2h)
			}
			if got, e := pe.MRS(r, 7); e.Taken() || got != v {
				t.Errorf("MRS %s E2H=%v: %#x %s", s.name, e2h, got, e)
			}
			if s.el1 && e2h && s.name != "PAR_EL1" && *s.home(pe) == v {
				t.Errorf("MSR %s E2H=1 also wrote the EL1 register", s.name)
			}
		}
		if s.el1 {
			// At EL1, E2H changes nothing.
			pe := cpu.New(0, vmsa.DefaultRegs(), 1, nil, nil)
			pe.Regs.HCR_EL2 = sysreg.HCR_RW | sysreg.HCR_E2H
			if e := pe.MSR(r, 1, 0x5000); e.Taken() || *s.home(pe) != 0x5000 {
				t.Errorf("MSR %s at EL1 with E2H=1: %s", s.name, e)
			}
		}
	}
}

// The access rules at EL1 and EL0 for every register:
//   - EL0: UNDEFINED, except the ID registers with FEAT_IDST (trapped to
//     EL1 with EC 0x18, to EL2 with HCR_EL2.TGE=1);
//   - EL1, EL2 registers and *_EL12 aliases: trapped to EL2 (EC 0x18) with
//     HCR_EL2.NV=1 and FEAT_NV, else UNDEFINED (to EL1);
//   - EL1, stage-1 controls: HCR_EL2.TVM traps writes, TRVM reads;
//   - EL1, ID registers: HCR_EL2.TID3 traps reads.
func TestSysRegTraps(t *testing.T) {
	const (
		tvm  = sysreg.HCR_TVM
		trvm = sysreg.HCR(1 << 30)
		tid3 = sysreg.HCR(1 << 18)
		nv   = sysreg.HCR_NV
	)
	type outcome struct {
		kind   cpu.ExceptionKind
		target uint8
	}
	none := outcome{}
	undef1 := outcome{cpu.Undefined, 1}
	undef2 := outcome{cpu.Undefined, 2}
	trap2 := outcome{cpu.SysTrap, 2}
	trap1 := outcome{cpu.SysTrap, 1}
	for _, s := range sysRegSpecs() {
		r, _ := cpu.ParseSysReg(s.name)
		type tc struct {
			name  string
			el    uint8
			hcr   sysreg.HCR
			mmfr2 func(sysreg.MMFR2) sysreg.MMFR2
			read  bool
			want  outcome
		}
		var cases []tc
		add := func(name string, el uint8, hcr sysreg.HCR, read bool, want outcome) {
			cases = append(cases, tc{name: name, el: el, hcr: hcr, read: read, want: want})
		}
		noNV := func(m sysreg.MMFR2) sysreg.MMFR2 { return m &^ (0xf << 24) }
		noIDS := func(m sysreg.MMFR2) sysreg.MMFR2 { return m &^ (0xf << 36) }
		switch {
		case s.id:
			add("EL0 read IDST", 0, 0, true, trap1)
			add("EL0 read IDST TGE", 0, sysreg.HCR_TGE, true, trap2)
			cases = append(cases, tc{"EL0 read no IDST", 0, 0, noIDS, true, undef1})
			add("EL0 write", 0, 0, false, undef1)
			add("EL1 read", 1, 0, true, none)
			add("EL1 read TID3", 1, tid3, true, trap2)
			add("EL1 read TVM TRVM", 1, tvm|trvm, true, none)
			add("EL1 write", 1, 0, false, undef1)
			add("EL2 read TID3", 2, tid3, true, none)
		case s.el1:
			add("EL0 read", 0, 0, true, undef1)
			add("EL0 write TGE", 0, sysreg.HCR_TGE, false, undef2)
			add("EL1 read", 1, 0, true, none)
			add("EL1 write TRVM", 1, trvm, false, none)
			add("EL1 read TVM", 1, tvm, true, none)
			add("EL1 read NV", 1, nv, true, none)
			add("EL1 read TID3", 1, tid3, true, none)
			if s.tvm {
				add("EL1 write TVM", 1, tvm, false, trap2)
				add("EL1 read TRVM", 1, trvm, true, trap2)
			} else {
				add("EL1 write TVM", 1, tvm, false, none)
				add("EL1 read TRVM", 1, trvm, true, none)
			}
			add("EL2 write TVM", 2, tvm|trvm, false, none)
		default: // EL2 registers and the *_EL12 aliases
			add("EL0 read", 0, 0, true, undef1)
			add("EL1 read", 1, 0, true, undef1)
			add("EL1 write", 1, 0, false, undef1)
			// AArch64.UndefinedFault: TGE does not route from EL1.
			add("EL1 write TGE", 1, sysreg.HCR_TGE, false, undef1)
			add("EL1 read NV", 1, nv, true, trap2)
			add("EL1 write NV", 1, nv|sysreg.HCR_NV1, false, trap2)
			cases = append(cases, tc{"EL1 read NV without FEAT_NV", 1, nv, noNV, true, undef1})
		}
		for _, c := range cases {
			regs := vmsa.DefaultRegs()
			regs.HCR_EL2 = sysreg.HCR_RW | c.hcr
			if s.el12 && c.el == 2 {
				regs.HCR_EL2 |= sysreg.HCR_E2H
			}
			if c.mmfr2 != nil {
				regs.MMFR2 = c.mmfr2(regs.MMFR2)
			}
			pe := cpu.New(0, regs, c.el, nil, nil)
			const v, rt = 0x1234_5000, 17
			before := *s.home(pe)
			var e cpu.Exception
			if c.read {
				_, e = pe.MRS(r, rt)
			} else {
				e = pe.MSR(r, rt, v)
			}
			name := s.name + " " + c.name
			if e.Kind != c.want.kind || (e.Taken() && (e.TargetEL != c.want.target || e.FromEL != c.el)) {
				t.Errorf("%s: %s, want %s to EL%d", name, e, c.want.kind, c.want.target)
				continue
			}
			switch e.Kind {
			case cpu.Undefined:
				if uint64(e.ESR) != undefESR || pe.ESR[c.want.target] != e.ESR {
					t.Errorf("%s: ESR %#x", name, uint64(e.ESR))
				}
			case cpu.SysTrap:
				want := uint64(0x18)<<26 | il | sysISS(s.op0, s.op1, s.crn, s.crm, s.op2, rt, c.read)
				if uint64(e.ESR) != want || pe.ESR[c.want.target] != e.ESR {
					t.Errorf("%s: ESR %#x, want %#x", name, uint64(e.ESR), want)
				}
			}
			if e.Taken() {
				if pe.EL != c.want.target {
					t.Errorf("%s: at EL%d after the exception", name, pe.EL)
				}
				// (Exception entry itself writes the target EL's ESR, and
				// for EL2 makes HPFAR_EL2 UNKNOWN.)
				if !c.read && *s.home(pe) != before && !strings.HasPrefix(s.name, "ESR_") && !(s.name == "HPFAR_EL2" && c.want.target == 2) {
					t.Errorf("%s: a trapped or UNDEFINED MSR changed the register", name)
				}
				if err := pe.ERET(); err.Taken() || pe.EL != c.el {
					t.Errorf("%s: ERET to EL%d", name, pe.EL)
				}
			} else if !c.read && *s.home(pe) != v {
				t.Errorf("%s: MSR did not write", name)
			}
		}
	}
	// Out-of-range register numbers are UNDEFINED.
	pe := cpu.New(0, vmsa.DefaultRegs(), 1, nil, nil)
	if e := pe.MSR(cpu.SysReg(99), 0, 0); e.Kind != cpu.Undefined {
		t.Errorf("MSR SysReg(99): %s", e)
	}
	_ = pe.ERET()
	if _, e := pe.MRS(cpu.SysReg(99), 0); e.Kind != cpu.Undefined {
		t.Errorf("MRS SysReg(99): %s", e)
	}
}

// MSR of a translation register takes effect for the next access: the
// PE's cached translation context is recomputed.
func TestMSRTakesEffect(t *testing.T) {
	m := newRig(t, false)
	pe := m.pe
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() {
		t.Fatal(e)
	}
	// Stage 1 off: the VA is now a PA (and Device: aligned access only).
	r, _ := cpu.ParseSysReg("SCTLR_EL1")
	if e := pe.MSR(r, 0, 1<<23); e.Taken() {
		t.Fatal(e)
	}
	_ = m.ram.Write(mem.PA(dataIPA+0x40), 8, 0x77)
	if v, e := pe.Read(dataIPA+0x40, 8, cpu.Insn{}); e.Taken() || v != 0x77 {
		t.Fatalf("after MSR SCTLR_EL1.M=0: %#x %s", v, e)
	}
	// ... and unaligned accesses fault (Device-nGnRnE).
	if _, e := pe.Read(dataIPA+0x41, 2, cpu.Insn{}); e.ESR.FSC() != 0b100001 {
		t.Fatalf("unaligned access with stage 1 off: %s", e)
	}
	_ = pe.ERET()
	// Stage 1 back on, with the stage-1 tables moved by MSR TTBR0_EL1 to
	// an empty table: vaData now faults at level 0 after a TLBI.
	if e := pe.MSR(r, 0, 1|1<<23); e.Taken() {
		t.Fatal(e)
	}
	ttbr, _ := cpu.ParseSysReg("TTBR0_EL1")
	old, _ := pe.MRS(ttbr, 0)
	if e := pe.MSR(ttbr, 0, old&^0xffff_ffff_fffe|0x4070_0000); e.Taken() {
		t.Fatal(e)
	}
	if e := pe.TLBI(tlb.OpVMALLE1, 0, 0); e.Taken() {
		t.Fatal(e)
	}
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.ESR.FSC() != 0b000100 {
		t.Fatalf("after moving TTBR0_EL1 to an empty table: %s, want a level 0 translation fault", e)
	}
}

// AT through the PE (AArch64.AT and the "Executing AT" rules of C5.4):
// which operations are legal at each EL, the HCR_EL2.AT and NV traps,
// PAR_EL1 and the Data Abort of a stage-2 fault of an AT at EL1.
func TestATThroughPE(t *testing.T) {
	type tc struct {
		name  string
		el    uint8
		op    at.Op
		setup func(pe *cpu.PE)
		va    uint64
		want  outcome2
	}
	// Default ID registers: FEAT_PAN2 present (RP/WP legal), FEAT_ATS1A
	// absent (S1E1A, S1E2A UNDEFINED), FEAT_NV present.
	cases := []tc{
		{"S1E0R EL0", 0, at.S1E0R, nil, vaData, outcome2{kind: cpu.Undefined, target: 1}},
		{"S1E1R EL0 TGE", 0, at.S1E1R, func(pe *cpu.PE) { pe.Regs.HCR_EL2 |= sysreg.HCR_TGE }, vaData, outcome2{kind: cpu.Undefined, target: 2}},
		{"S1E1R EL1", 1, at.S1E1R, nil, vaData, outcome2{par: dataIPA}},
		{"S1E1W EL1 read-only", 1, at.S1E1W, nil, vaRO, outcome2{parFault: 0b001111}},
		{"S1E0R EL1 EL1-only page", 1, at.S1E0R, nil, vaX1, outcome2{parFault: 0b001111}},
		{"S1E0W EL1", 1, at.S1E0W, nil, vaData, outcome2{par: dataIPA}},
		{"S1E1RP EL1 PAN", 1, at.S1E1RP, func(pe *cpu.PE) { pe.PAN = true }, vaData, outcome2{parFault: 0b001111}},
		{"S1E1R EL1 PAN", 1, at.S1E1R, func(pe *cpu.PE) { pe.PAN = true }, vaData, outcome2{par: dataIPA}},
		{"S1E1WP EL1", 1, at.S1E1WP, nil, vaData, outcome2{par: dataIPA}},
		{"S1E1RP without PAN2", 1, at.S1E1RP, func(pe *cpu.PE) { pe.Regs.MMFR1 &^= 0xf << 20; pe.Regs.MMFR1 |= 1 << 20 }, vaData, outcome2{kind: cpu.Undefined, target: 1}},
		{"S1E1A EL1 without ATS1A", 1, at.S1E1A, nil, vaData, outcome2{kind: cpu.Undefined, target: 1}},
		{"S1E2R EL1", 1, at.S1E2R, nil, vaData, outcome2{kind: cpu.Undefined, target: 1}},
		{"S12E1R EL1", 1, at.S12E1R, nil, vaData, outcome2{kind: cpu.Undefined, target: 1}},
		{"S1E2R EL1 NV", 1, at.S1E2R, func(pe *cpu.PE) { pe.Regs.HCR_EL2 |= sysreg.HCR_NV }, vaData,
			outcome2{kind: cpu.SysTrap, target: 2, esr: 0x18<<26 | il | sysISS(1, 4, 7, 8, 0, 6, false)}},
		{"S12E0W EL1 NV", 1, at.S12E0W, func(pe *cpu.PE) { pe.Regs.HCR_EL2 |= sysreg.HCR_NV }, vaData,
			outcome2{kind: cpu.SysTrap, target: 2, esr: 0x18<<26 | il | sysISS(1, 4, 7, 8, 7, 6, false)}},
		// HCR_EL2.AT traps the EL1 forms executed at EL1 (FEAT_NV).
		{"S1E1R EL1 HCR.AT", 1, at.S1E1R, func(pe *cpu.PE) { pe.Regs.HCR_EL2 |= sysreg.HCR_AT }, vaData,
			outcome2{kind: cpu.SysTrap, target: 2, esr: 0x18<<26 | il | sysISS(1, 0, 7, 8, 0, 6, false)}},
		{"S1E0W EL1 HCR.AT", 1, at.S1E0W, func(pe *cpu.PE) { pe.Regs.HCR_EL2 |= sysreg.HCR_AT }, vaData,
			outcome2{kind: cpu.SysTrap, target: 2, esr: 0x18<<26 | il | sysISS(1, 0, 7, 8, 3, 6, false)}},
		{"S1E1RP EL1 HCR.AT", 1, at.S1E1RP, func(pe *cpu.PE) { pe.Regs.HCR_EL2 |= sysreg.HCR_AT }, vaData,
			outcome2{kind: cpu.SysTrap, target: 2, esr: 0x18<<26 | il | sysISS(1, 0, 7, 9, 0, 6, false)}},
		// At EL2 the HCR_EL2.AT trap does not apply.
		{"S1E1R EL2 HCR.AT", 2, at.S1E1R, func(pe *cpu.PE) { pe.Regs.HCR_EL2 |= sysreg.HCR_AT }, vaData, outcome2{par: dataIPA}},
		{"S1E2R EL2 MMU off", 2, at.S1E2R, nil, 0x4000_1234, outcome2{par: 0x4000_1000}},
		{"S1E2A EL2 without ATS1A", 2, at.S1E2A, nil, vaData, outcome2{kind: cpu.Undefined, target: 2}},
		{"S12E1R EL2 no stage 2", 2, at.S12E1R, nil, vaData, outcome2{par: dataIPA}},
		{"S12E0R EL2 hole", 2, at.S12E0R, nil, vaHole, outcome2{parFault: 0b000111}},
	}
	m := newRig(t, false)
	for _, c := range cases {
		pe := m.fresh()
		if c.setup != nil {
			c.setup(pe)
		}
		setEL(pe, c.el, pe.PAN)
		pe.PAR = 0xdead_0000 // PAR_EL1 before the instruction
		e := pe.AT(c.op, 6, mem.VA(c.va))
		checkAT(t, c.name, pe, c.el, e, c.want)
	}
	// With stage 2: AT S12E1R at EL2 walks both stages; a stage-2 fault of
	// AT S1E1R at EL1 (on the stage-1 walk) is a Data Abort to EL2 with
	// ISS.CM=1, WnR=1, S1PTW=1, FAR = the VA and HPFAR = the table's IPA.
	m = newRig(t, true)
	pe := m.fresh()
	setEL(pe, 2, false)
	pe.AT(at.S12E1R, 0, vaS2Hole)
	if !pe.PAR.F() || !pe.PAR.S() || pe.PAR.FST() != 0b000110 {
		t.Errorf("S12E1R on a stage-2 hole: PAR %#x, want F=1 S=1 FST=0b000110", uint64(pe.PAR))
	}
	pe.AT(at.S1E1R, 0, vaS2Hole)
	if pe.PAR.F() || pe.PAR.PA() != holeIPA {
		t.Errorf("S1E1R at EL2 (stage 1 only): PAR %#x, want the IPA %#x", uint64(pe.PAR), uint64(holeIPA))
	}
	_, addr, _ := m.s1.Get(vaHole, 2)
	old, _ := m.ram.Read64(mem.PA(addr))
	_ = m.ram.Write64(mem.PA(addr), holeIPA|3)
	defer func() { _ = m.ram.Write64(mem.PA(addr), old) }()
	pe = m.fresh()
	pe.PAR = 0x800
	e := pe.AT(at.S1E1R, 2, vaHole)
	want := uint64(0x24<<26 | il | 1<<8 | 1<<7 | 1<<6 | 0b000110)
	if e.Kind != cpu.DataAbort || e.TargetEL != 2 || uint64(e.ESR) != want || e.FAR != vaHole || uint64(e.HPFAR) != hpfar(holeIPA) {
		t.Errorf("AT S1E1R with a stage-2 fault on the walk: %s, want ESR %#x", e, want)
	}
	if pe.EL != 2 || pe.PAR != 0x800 || uint64(pe.HPFAR) != hpfar(holeIPA) || pe.FAR[2] != vaHole {
		t.Errorf("after the abort: EL%d PAR %#x HPFAR %#x", pe.EL, uint64(pe.PAR), uint64(pe.HPFAR))
	}
	if pe.Stats.ATs != 1 {
		t.Errorf("Stats.ATs %d", pe.Stats.ATs)
	}
}

type outcome2 struct {
	kind     cpu.ExceptionKind
	target   uint8
	esr      uint64 // checked when nonzero
	par      uint64 // expected PAR_EL1.PA
	parFault uint8  // expected PAR_EL1.FST (F=1)
}

func checkAT(t *testing.T, name string, pe *cpu.PE, from uint8, e cpu.Exception, w outcome2) {
	t.Helper()
	if e.Kind != w.kind {
		t.Errorf("%s: %s, want %s", name, e, w.kind)
		return
	}
	if e.Taken() {
		if e.TargetEL != w.target || pe.EL != w.target || e.FromEL != from {
			t.Errorf("%s: %s, want to EL%d", name, e, w.target)
		}
		if w.kind == cpu.Undefined && uint64(e.ESR) != undefESR {
			t.Errorf("%s: ESR %#x", name, uint64(e.ESR))
		}
		if w.esr != 0 && uint64(e.ESR) != w.esr {
			t.Errorf("%s: ESR %#x, want %#x", name, uint64(e.ESR), w.esr)
		}
		if pe.PAR != 0xdead_0000 {
			t.Errorf("%s: PAR_EL1 written (%#x) by an AT that took an exception", name, uint64(pe.PAR))
		}
		return
	}
	if w.parFault != 0 {
		if !pe.PAR.F() || pe.PAR.FST() != w.parFault {
			t.Errorf("%s: PAR %#x, want F=1 FST=%#x", name, uint64(pe.PAR), w.parFault)
		}
		return
	}
	if pe.PAR.F() || pe.PAR.PA() != w.par {
		t.Errorf("%s: PAR %#x, want PA %#x", name, uint64(pe.PAR), w.par)
	}
}

// TLBI through the PE: UNDEFINED at EL0 and for the EL2/stage-2 forms at
// EL1 (trapped with HCR_EL2.NV); HCR_EL2.TTLB traps every EL1 TLBI,
// TTLBIS the Inner Shareable and TTLBOS the Outer Shareable forms
// (FEAT_EVT); the trap ISS is Op0=1, Op1, CRn=8, CRm, Op2, Rt, Direction 0.
func TestTLBIRules(t *testing.T) {
	const ttlbis, ttlbos = sysreg.HCR_TTLBIS, sysreg.HCR_TTLBOS
	type tc struct {
		name string
		el   uint8
		hcr  sysreg.HCR
		op   tlb.Op
		want cpu.ExceptionKind
		tgt  uint8
		// op1, crm, op2 of the trapped instruction (DDI 0487 TLBI encodings)
		op1, crm, op2 uint8
	}
	cases := []tc{
		{"VMALLE1 EL0", 0, 0, tlb.OpVMALLE1, cpu.Undefined, 1, 0, 0, 0},
		{"VMALLE1 EL0 TGE", 0, sysreg.HCR_TGE, tlb.OpVMALLE1, cpu.Undefined, 2, 0, 0, 0},
		{"VMALLE1 EL1", 1, 0, tlb.OpVMALLE1, cpu.NoException, 0, 0, 0, 0},
		{"ALLE2 EL1", 1, 0, tlb.OpALLE2, cpu.Undefined, 1, 0, 0, 0},
		{"IPAS2E1IS EL1", 1, 0, tlb.OpIPAS2E1.IS(), cpu.Undefined, 1, 0, 0, 0},
		{"ALLE2 EL1 NV", 1, sysreg.HCR_NV, tlb.OpALLE2, cpu.SysTrap, 2, 4, 7, 0},
		{"VMALLS12E1IS EL1 NV", 1, sysreg.HCR_NV, tlb.OpVMALLS12E1.IS(), cpu.SysTrap, 2, 4, 3, 6},
		{"IPAS2E1 EL1 NV", 1, sysreg.HCR_NV, tlb.OpIPAS2E1, cpu.SysTrap, 2, 4, 4, 1},
		{"VAE1 EL1 TTLB", 1, sysreg.HCR_TTLB, tlb.OpVAE1, cpu.SysTrap, 2, 0, 7, 1},
		{"VAE1IS EL1 TTLB", 1, sysreg.HCR_TTLB, tlb.OpVAE1.IS(), cpu.SysTrap, 2, 0, 3, 1},
		{"ASIDE1OS EL1 TTLB", 1, sysreg.HCR_TTLB, tlb.OpASIDE1.OS(), cpu.SysTrap, 2, 0, 1, 2},
		{"RVAE1 EL1 TTLB", 1, sysreg.HCR_TTLB, tlb.OpRVAE1, cpu.SysTrap, 2, 0, 6, 1},
		{"VALE1IS EL1 TTLBIS", 1, ttlbis, tlb.OpVALE1.IS(), cpu.SysTrap, 2, 0, 3, 5},
		{"VALE1 EL1 TTLBIS", 1, ttlbis, tlb.OpVALE1, cpu.NoException, 0, 0, 0, 0},
		{"VALE1OS EL1 TTLBIS", 1, ttlbis, tlb.OpVALE1.OS(), cpu.NoException, 0, 0, 0, 0},
		{"VAAE1OS EL1 TTLBOS", 1, ttlbos, tlb.OpVAAE1.OS(), cpu.SysTrap, 2, 0, 1, 3},
		{"VAAE1IS EL1 TTLBOS", 1, ttlbos, tlb.OpVAAE1.IS(), cpu.NoException, 0, 0, 0, 0},
		// With HCR_EL2.FB the upgraded instruction is still the one executed:
		// TTLBIS does not trap a non-shareable form.
		{"VMALLE1 EL1 FB TTLBIS", 1, 1<<9 | ttlbis, tlb.OpVMALLE1, cpu.NoException, 0, 0, 0, 0},
		{"VAE1 EL2 TTLB", 2, sysreg.HCR_TTLB, tlb.OpVAE1, cpu.NoException, 0, 0, 0, 0},
		{"ALLE2 EL2", 2, 0, tlb.OpALLE2, cpu.NoException, 0, 0, 0, 0},
		{"invalid op EL2", 2, 0, tlb.Op(0x7f), cpu.Undefined, 2, 0, 0, 0},
	}
	for _, c := range cases {
		r := vmsa.DefaultRegs()
		r.HCR_EL2 = sysreg.HCR_RW | c.hcr
		pe := cpu.New(0, r, c.el, nil, tlb.MustNew(tlb.Config{}))
		e := pe.TLBI(c.op, 21, 0)
		if e.Kind != c.want || (e.Taken() && (e.TargetEL != c.tgt || pe.EL != c.tgt)) {
			t.Errorf("%s: %s, want %s to EL%d", c.name, e, c.want, c.tgt)
			continue
		}
		switch e.Kind {
		case cpu.SysTrap:
			want := uint64(0x18)<<26 | il | sysISS(1, c.op1, 8, c.crm, c.op2, 21, false)
			if uint64(e.ESR) != want {
				t.Errorf("%s: ESR %#x, want %#x", c.name, uint64(e.ESR), want)
			}
		case cpu.Undefined:
			if uint64(e.ESR) != undefESR {
				t.Errorf("%s: ESR %#x", c.name, uint64(e.ESR))
			}
		}
		if pe.Stats.TLBIs != 1 {
			t.Errorf("%s: Stats.TLBIs %d", c.name, pe.Stats.TLBIs)
		}
	}
}

// HCR_EL2.FB: a non-shareable TLBI at EL1 acts as its Inner Shareable form
// and reaches the other PEs of the Inner Shareable domain; without FB it
// reaches only the issuing PE's TLB.
func TestTLBIForceBroadcast(t *testing.T) {
	m := newRig(t, true)
	for _, fb := range []bool{false, true} {
		d, err := tlb.NewDomain(2, tlb.Config{})
		if err != nil {
			t.Fatal(err)
		}
		pes := make([]*cpu.PE, 2)
		for i := range pes {
			pes[i] = cpu.New(i, m.base, 1, m.ram, d.TLBs[i])
			pes[i].Domain = d
			if fb {
				pes[i].Regs.HCR_EL2 |= 1 << 9
			}
			if _, e := pes[i].Read(vaData, 8, cpu.Insn{}); e.Taken() {
				t.Fatal(e)
			}
		}
		if e := pes[0].TLBI(tlb.OpVMALLE1, 0, 0); e.Taken() {
			t.Fatal(e)
		}
		for i, pe := range pes {
			hits := pe.Stats.TLBHits
			_, _ = pe.Read(vaData, 8, cpu.Insn{})
			hit := pe.Stats.TLBHits > hits
			wantHit := i == 1 && !fb
			if hit != wantHit {
				t.Errorf("FB=%v PE%d: TLB hit=%v after PE0's TLBI VMALLE1, want %v", fb, i, hit, wantHit)
			}
		}
	}
}

// The VMID a TLBI acts on is the PE's current VMID: with 8-bit VMIDs
// (ID_AA64MMFR1_EL1.VMIDBits=0) VTCR_EL2.VS is RES0 and VTTBR_EL2.VMID[15:8]
// is ignored, both when the TLB is filled and when it is invalidated.
func TestTLBIVMIDWidth(t *testing.T) {
	m := newMachine(t, true) // VTCR_EL2.VS=1
	pe := m.pe
	pe.Regs.MMFR1 &^= 0xf << 4
	pe.Regs.VTTBR_EL2 = pe.Regs.VTTBR_EL2&^(0xffff<<48) | 0x107<<48
	pe.RegsChanged()
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() {
		t.Fatal(e)
	}
	if e := pe.TLBI(tlb.OpVMALLE1, 0, 0); e.Taken() {
		t.Fatal(e)
	}
	w := pe.Stats.Walks
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() || pe.Stats.Walks != w+1 {
		t.Fatalf("TLBI VMALLE1 left the current VMID's entry (%s)", e)
	}
}

// Likewise TCR_EL1.AS is RES0 with 8-bit ASIDs (ID_AA64MMFR0_EL1.ASIDBits=0):
// a TLBI VAE1 whose Xt carries ASID[15:8] junk still matches the 8-bit ASID.
func TestTLBIASIDWidth(t *testing.T) {
	m := newMachine(t, false)
	pe := m.pe
	if err := m.s1.MapS1(vaData, 3, desc.S1Leaf{OA: dataIPA, AP: 0b01, SH: 3, AF: true, NG: true}); err != nil {
		t.Fatal(err)
	}
	pe.Regs.MMFR0 &^= 0xf << 4
	pe.Regs.TCR_EL1 |= 1 << 36 // AS
	pe.RegsChanged()
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() {
		t.Fatal(e)
	}
	if e := pe.TLBI(tlb.OpVAE1, 0, 0x3405<<48|vaData>>12); e.Taken() {
		t.Fatal(e)
	}
	w := pe.Stats.Walks
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() || pe.Stats.Walks != w+1 {
		t.Fatalf("TLBI VAE1 with ASID 0x3405 left the entry of 8-bit ASID 5 (%s)", e)
	}
}
