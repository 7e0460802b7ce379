package at_test

import (
	"bytes"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/conform"
	"github.com/nestmmu/nestmmu/mem"
)

// TestDecideComplete: on generated machine states, Decide, a stage-1 walk
// that stops at the IPA, Walker.ApplyStage2 for the two-stage plans, and
// Complete give exactly what Execute gives (PAR_EL1 or the exception, and
// the same memory afterwards): the pieces a hypervisor emulating AT uses
// compose to the instruction.
func TestDecideComplete(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 60
	}
	for i := range n {
		c := conform.GenerateOne(7, i)
		whole := machine(t, &c)
		split := machine(t, &c)
		ww := &vmsa.Walker{Mem: whole.Mem}
		ws := &vmsa.Walker{Mem: split.Mem}
		for el := uint8(1); el <= 2; el++ {
			ps := at.PSTATE{EL: el, PAN: c.Q.PAN}
			for _, op := range whole.Ops {
				want := at.Execute(ww, &whole.Regs, ps, op.Op, op.VA, 0x800)
				p, x, taken := at.Decide(&split.Regs, ps, op.Op, 0)
				var got at.Result
				if taken {
					got = at.Result{PAR: 0x800, Taken: true, Exception: x}
				} else {
					tr := ws.Translate(&split.Regs, p.Regime, mem.VA(op.VA), p.Access, vmsa.TranslateOptions{Stage1Only: true})
					// With stage 2 enabled (vmsa.S2Enabled) the walk stops at the IPA.
					if p.Stage12 && tr.IPAOnly {
						tr = ws.ApplyStage2(&split.Regs, tr, p.Access)
					}
					got = at.Complete(ps, p, tr, op.VA, 0x800)
				}
				if got.PAR != want.PAR || got.Taken != want.Taken || got.Exception != want.Exception {
					t.Fatalf("case %s EL%d %v %#x: split %#x %v %v, Execute %#x %v %v", c.ID, el, op.Op, op.VA,
						uint64(got.PAR), got.Taken, got.Exception, uint64(want.PAR), want.Taken, want.Exception)
				}
				if got.Translation.Attrs != want.Translation.Attrs || got.Translation.OA != want.Translation.OA {
					t.Fatalf("case %s %v %#x: translation %+v, Execute %+v", c.ID, op.Op, op.VA, got.Translation, want.Translation)
				}
			}
		}
		for a := range c.Q.Mem {
			x, _ := whole.Mem.Read64(mem.PA(a))
			y, _ := split.Mem.Read64(mem.PA(a))
			if x != y {
				t.Fatalf("case %s: word %#x is %#x after Execute, %#x after the split run", c.ID, a, x, y)
			}
		}
	}
}

func machine(t *testing.T, c *conform.Case) *atjson.Machine {
	t.Helper()
	m, err := atjson.Parse(bytes.NewReader(conform.MarshalCase(&c.Q)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
