package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// The property test's pool: VAs mapped at stage 1 (level 3) to pool IPAs,
// which stage 2 maps (level 3) to pool PAs; each descriptor is rewritten
// at random, always followed by TLB maintenance that covers it.
const (
	poolVA   = 0x5000_0000
	poolIPA  = 0x4600_0000 // not in newMachine's stage-2 identity map
	poolPA   = 0x4680_0000
	poolSize = 8
)

type poolState struct {
	s1 [poolSize]desc.S1Leaf
	v1 [poolSize]bool // stage-1 leaf valid
}

// TestTLBNeverStale runs random legal sequences at EL1 (and EL0) with stage
// 2 on: loads, stores and fetches; descriptor changes of either stage each
// followed by a TLBI that covers every entry the old descriptor could have
// produced (DDI 0487 D8.14, "TLB maintenance requirements"); ASID switches
// by MSR TTBR0_EL1 (legal without maintenance, since the tables do not
// change); SCTLR_EL1.M toggles and PSTATE.PAN changes. After each step
// every access must behave exactly as a fresh walk with an empty TLB: the
// TLB never serves a translation the architecture would not allow.
func TestTLBNeverStale(t *testing.T) {
	steps := 20000
	if testing.Short() {
		steps = 5000
	}
	for seed := uint64(1); seed <= 3; seed++ {
		runLegalSequence(t, seed, steps)
	}
}

func runLegalSequence(t *testing.T, seed uint64, steps int) {
	m := newRig(t, true)
	pe := m.fresh()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var st poolState
	// Initial stage-2 pages: IPA j -> PA j, read/write, executable.
	for j := 0; j < poolSize; j++ {
		if err := m.s2.MapS2(poolIPA+uint64(j)<<12, 3, desc.S2Leaf{OA: poolPA + uint64(j)<<12, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < poolSize; i++ {
		st.s1[i] = desc.S1Leaf{OA: poolIPA + uint64(i)<<12, AP: 0b01, SH: 3, AF: true, NG: i%2 == 1}
		st.v1[i] = true
		if err := m.s1.MapS1(poolVA+uint64(i)<<12, 3, st.s1[i]); err != nil {
			t.Fatal(err)
		}
	}
	asids := [2]uint16{5, 6}
	tlbi := func(op tlb.Op, xt uint64) {
		t.Helper()
		if rng.IntN(3) == 0 {
			op = op.IS()
		} else if rng.IntN(3) == 0 {
			op = op.OS()
		}
		if e := pe.TLBI(op, 0, xt); e.Taken() {
			t.Fatalf("seed %d: TLBI %s: %s", seed, op, e)
		}
	}
	vaXt := func(va uint64, asid uint16) uint64 { return uint64(asid)<<48 | va>>12&(1<<44-1) }
	hot := 0 // the page last changed: accesses favour it, where stale entries would show

	for step := 0; step < steps; step++ {
		switch k := rng.IntN(20); {
		case k < 12:
			checkAccess(t, m, pe, rng, seed, step, hot)
		case k < 15:
			// Rewrite one stage-1 leaf at EL1, then invalidate it.
			setEL(pe, 1, pe.PAN)
			i := rng.IntN(poolSize)
			hot = i
			va := poolVA + uint64(i)<<12
			oldGlobal := st.v1[i] && !st.s1[i].NG
			if rng.IntN(6) == 0 {
				st.v1[i] = false
				_ = m.s1.Set(va, 3, 0)
			} else {
				st.v1[i] = true
				st.s1[i] = desc.S1Leaf{OA: poolIPA + uint64(rng.IntN(poolSize))<<12, AP: uint(rng.IntN(4)), SH: 3,
					AF: rng.IntN(8) != 0, NG: rng.IntN(2) == 0, PXN: rng.IntN(4) == 0, UXN: rng.IntN(4) == 0}
				if err := m.s1.MapS1(va, 3, st.s1[i]); err != nil {
					t.Fatal(err)
				}
			}
			switch c := rng.IntN(6); {
			case c == 0:
				tlbi(tlb.OpVMALLE1, 0)
			case c == 1:
				tlbi(tlb.OpVAAE1, vaXt(va, 0))
			case c == 2:
				tlbi(tlb.OpVAALE1, vaXt(va, 0)) // a leaf changed: last level suffices
			case c == 3:
				// By VA and ASID: once per ASID that may hold it (a global
				// entry matches any ASID).
				tlbi(tlb.OpVAE1, vaXt(va, asids[0]))
				tlbi(tlb.OpVALE1, vaXt(va, asids[1]))
			case c == 4 && !oldGlobal:
				// ASIDE1 leaves global entries: only for a non-global old leaf.
				tlbi(tlb.OpASIDE1, uint64(asids[0])<<48)
				tlbi(tlb.OpASIDE1, uint64(asids[1])<<48)
			default:
				tlbi(tlb.OpVMALLE1, 0)
			}
		case k < 17:
			// The hypervisor rewrites a stage-2 leaf: an exception to EL2,
			// TLBI IPAS2E1 for the IPA and TLBI VMALLE1 for the combined
			// entries (or VMALLS12E1 for both), ERET.
			from := pe.EL
			e := cpu.Exception{Kind: cpu.SysTrap, TargetEL: 2, ESR: sysreg.ESR(0x16 << 26)}
			pe.TakeException(&e)
			j := rng.IntN(poolSize)
			hot = j
			ipa := poolIPA + uint64(j)<<12
			if rng.IntN(6) == 0 {
				_ = m.s2.Set(ipa, 3, 0)
			} else {
				l := desc.S2Leaf{OA: poolPA + uint64(rng.IntN(poolSize))<<12, MemAttr: 0xf, S2AP: uint(rng.IntN(4)), SH: 3,
					AF: rng.IntN(8) != 0, XN: uint(rng.IntN(4))}
				if err := m.s2.MapS2(ipa, 3, l); err != nil {
					t.Fatal(err)
				}
			}
			if rng.IntN(2) == 0 {
				tlbi(tlb.OpVMALLS12E1, 0)
			} else {
				tlbi(tlb.OpIPAS2E1, ipa>>12)
				tlbi(tlb.OpVMALLE1, 0)
			}
			if err := pe.ERET(); err.Taken() || pe.EL != from {
				t.Fatalf("ERET: %v", err)
			}
		case k < 18:
			// Switch ASID with MSR TTBR0_EL1 (same tables).
			setEL(pe, 1, pe.PAN)
			r, _ := cpu.ParseSysReg("TTBR0_EL1")
			v, _ := pe.MRS(r, 0)
			a := asids[rng.IntN(2)]
			if e := pe.MSR(r, 0, v&^(0xffff<<48)|uint64(a)<<48); e.Taken() {
				t.Fatal(e)
			}
		case k < 19:
			// Toggle SCTLR_EL1.M (stage 1 off: the VA is the IPA).
			setEL(pe, 1, pe.PAN)
			r, _ := cpu.ParseSysReg("SCTLR_EL1")
			v, _ := pe.MRS(r, 0)
			if e := pe.MSR(r, 0, v^1); e.Taken() {
				t.Fatal(e)
			}
		default:
			setEL(pe, uint8(rng.IntN(2)), rng.IntN(2) == 0)
		}
	}
	if pe.Stats.TLBHits == 0 {
		t.Errorf("seed %d: no TLB hits in %d steps: the property was not exercised", seed, steps)
	}
}

// checkAccess makes one random access and compares it with a fresh walk.
func checkAccess(t *testing.T, m *machine, pe *cpu.PE, rng *rand.Rand, seed uint64, step, hot int) {
	t.Helper()
	base := uint64(poolVA)
	if rng.IntN(4) == 0 {
		base = poolIPA // meaningful with stage 1 off
	}
	size := 1 << rng.IntN(4)
	page := rng.IntN(poolSize)
	if rng.IntN(2) == 0 {
		page = hot
	}
	va := base + uint64(page)<<12 + uint64(rng.IntN(4096/size)*size)
	kind := vmsa.AccessKind(rng.IntN(3))
	if kind == vmsa.Fetch {
		size = 4
		va &^= 3
	}
	acc := vmsa.Access{Kind: kind, EL: pe.EL}
	if kind != vmsa.Fetch {
		acc.PAN = pe.PAN && pe.EL != 0 && pe.Regs.MMFR1.PAN() >= 1
	}
	w := vmsa.Walker{Mem: m.ram}
	ref := w.Translate(&pe.Regs, pe.Regime(), mem.VA(va), acc, vmsa.TranslateOptions{})
	val := rng.Uint64() & (1<<(8*uint(size)) - 1)
	if size == 8 {
		val = rng.Uint64()
	}
	if !ref.Fault.IsFault() && kind != vmsa.Write {
		_ = m.ram.Write(mem.PA(ref.OA), size, val)
	}
	from := pe.EL
	var got uint64
	var e cpu.Exception
	switch kind {
	case vmsa.Read:
		got, e = pe.Read(mem.VA(va), size, cpu.Insn{})
	case vmsa.Write:
		e = pe.Write(mem.VA(va), size, val, cpu.Insn{})
	case vmsa.Fetch:
		var insn uint32
		insn, e = pe.Fetch(mem.VA(va))
		got = uint64(insn)
	}
	where := func() string {
		return fmt.Sprintf("seed %d step %d", seed, step)
	}
	if ref.Fault.IsFault() {
		if !e.Taken() || e.Fault != ref.Fault || e.ESR.FSC() != ref.Fault.FSC() || e.FAR != mem.VA(va) {
			t.Fatalf("%s: %v of %#x at EL%d: got %s (fault %s), a fresh walk faults: %s", where(), kind, va, from, e, e.Fault, ref.Fault)
		}
		if err := pe.ERET(); err.Taken() || pe.EL != from {
			t.Fatalf("%s: ERET %v", where(), err)
		}
		return
	}
	if e.Taken() {
		t.Fatalf("%s: %v of %#x at EL%d: %s, but a fresh walk gives PA %#x", where(), kind, va, from, e, ref.OA)
	}
	switch kind {
	case vmsa.Write:
		if v, _ := m.ram.Read(mem.PA(ref.OA), size); v != val {
			t.Fatalf("%s: store to %#x: PA %#x holds %#x, want %#x (stored elsewhere: stale TLB)", where(), va, ref.OA, v, val)
		}
	default:
		if got != val {
			t.Fatalf("%s: %v of %#x: %#x, want %#x from PA %#x (stale TLB)", where(), kind, va, got, val, ref.OA)
		}
	}
}
