package interp_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/interp"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

const (
	ramBase  = 0x4000_0000
	codeBase = 0x4000_0000
	dataBase = 0x4010_0000
	vectors  = 0x4020_0000 // VBAR_EL1 and VBAR_EL2 (distinct halves)
)

// rig is a PE at EL2 (MMU off, HCR_EL2.RW) over 4 MiB of flat RAM with an
// interpreter, code at codeBase.
type rig struct {
	t   testing.TB
	ram *mem.Flat
	pe  *cpu.PE
	c   *interp.CPU
	// undef collects the Strict reports.
	undef []string
}

func newRig(t testing.TB, el uint8) *rig {
	t.Helper()
	ram, err := mem.NewFlat(ramBase, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	regs := vmsa.DefaultRegs()
	regs.HCR_EL2 = sysreg.HCRFields{RW: true}.Value()
	pe := cpu.New(0, regs, el, ram, tlb.MustNew(tlb.Config{}))
	pe.SP = true
	pe.PC = codeBase
	pe.VBAR[1] = vectors
	pe.VBAR[2] = vectors + 0x1000
	r := &rig{t: t, ram: ram, pe: pe}
	r.c = interp.New(pe, interp.Options{Strict: func(pc mem.VA, w uint32, why string) { r.undef = append(r.undef, why) }})
	return r
}

// newRigHCR is newRig with the bits hcr set in HCR_EL2 and, at EL0,
// PSTATE.SP 0 (EL0 has only SP_EL0).
func newRigHCR(t testing.TB, el uint8, hcr sysreg.HCR) *rig {
	t.Helper()
	r := newRig(t, el)
	r.pe.Regs.HCR_EL2 |= hcr
	r.pe.RegsChanged()
	if el == 0 {
		r.pe.SP = false
	}
	return r
}

// code writes instruction words at codeBase.
func (r *rig) code(words ...uint32) {
	for i, w := range words {
		if !r.ram.Write(mem.PA(codeBase+4*i), 4, uint64(w)) {
			r.t.Fatalf("code word %d outside RAM", i)
		}
	}
	r.c.InvalidateCode()
}

// run executes n instructions (or exceptions).
func (r *rig) run(n int) {
	for i := 0; i < n; i++ {
		r.c.Step()
	}
}
