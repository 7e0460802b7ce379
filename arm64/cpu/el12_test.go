package cpu_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
)

// TestEL12: the *_EL12 names of the EL1 registers (the register
// descriptions' "when HCR_EL2.E2H is 1, EL2 accesses ... using ..._EL12"),
// and none for PAR_EL1 (not redirected by E2H) or an EL2 register.
func TestEL12(t *testing.T) {
	for _, c := range []struct{ el1, el12 string }{
		{"SCTLR_EL1", "SCTLR_EL12"}, {"TCR_EL1", "TCR_EL12"}, {"TTBR0_EL1", "TTBR0_EL12"}, {"TTBR1_EL1", "TTBR1_EL12"},
		{"MAIR_EL1", "MAIR_EL12"}, {"ESR_EL1", "ESR_EL12"}, {"FAR_EL1", "FAR_EL12"}, {"ELR_EL1", "ELR_EL12"},
		{"SPSR_EL1", "SPSR_EL12"}, {"VBAR_EL1", "VBAR_EL12"}, {"PAR_EL1", ""}, {"TCR_EL2", ""}, {"SCTLR_EL12", ""},
	} {
		r, err := cpu.ParseSysReg(c.el1)
		if err != nil {
			t.Fatal(err)
		}
		a, ok := r.EL12()
		if got := map[bool]string{true: a.String()}[ok]; got != c.el12 {
			t.Errorf("%s: EL12 name %q, want %q", c.el1, got, c.el12)
		}
	}
}
