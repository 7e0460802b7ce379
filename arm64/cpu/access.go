package cpu

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// granuleFloor is the smallest translation granule: an access that stays
// within one 4KB page needs a single translation.
const granuleFloor = 4096

// Read loads size bytes (1, 2, 4 or 8) from va at the current EL.
func (pe *PE) Read(va uint64, size int, in Insn) (uint64, Exception) {
	pe.Stats.Loads++
	return pe.data(va, size, 0, false, in)
}

// Write stores the low size bytes of v to va at the current EL.
func (pe *PE) Write(va uint64, size int, v uint64, in Insn) Exception {
	pe.Stats.Stores++
	_, e := pe.data(va, size, v, true, in)
	return e
}

// Fetch reads the 32-bit instruction at va at the current EL.
func (pe *PE) Fetch(va uint64) (uint32, Exception) {
	pe.Stats.Fetches++
	if va&3 != 0 {
		// PC alignment fault: ESR EC 0x22, FAR = the PC.
		e := Exception{Kind: InstructionAbort, FromEL: pe.EL, TargetEL: pe.targetEL(), FAR: va,
			ESR: sysreg.ESR(0x22<<26 | 1<<25)}
		pe.TakeException(&e)
		return 0, e
	}
	pa, e := pe.translate(va, pe.access(vmsa.Fetch), 4, Insn{})
	if e.Taken() {
		return 0, e
	}
	v, ok := pe.Mem.Read(mem.PA(pa), 4)
	if !ok {
		return 0, pe.external(va, vmsa.Fetch, false)
	}
	return uint32(v), Exception{}
}

// targetEL is where a stage-1 exception from the current EL goes.
func (pe *PE) targetEL() uint8 {
	if pe.EL == 2 || pe.Regs.HCR_EL2.TGE() {
		return 2
	}
	return 1
}

func (pe *PE) data(va uint64, size int, v uint64, write bool, in Insn) (uint64, Exception) {
	if size != 1 && size != 2 && size != 4 && size != 8 {
		panic(fmt.Sprintf("cpu: access size %d is not 1, 2, 4 or 8", size))
	}
	kind := vmsa.Read
	if write {
		kind = vmsa.Write
	}
	acc := pe.access(kind)
	if va&uint64(size-1) != 0 && pe.alignmentChecked() {
		return 0, pe.alignment(va, write)
	}
	if va%granuleFloor+uint64(size) > granuleFloor {
		// Crosses a page: each byte is its own access, in address order.
		var out uint64
		for i := 0; i < size; i++ {
			pa, e := pe.translate(va+uint64(i), acc, size, in)
			if e.Taken() {
				return 0, e
			}
			if write {
				if !pe.Mem.Write(mem.PA(pa), 1, v>>(8*i)&0xff) {
					return 0, pe.external(va, kind, write)
				}
				continue
			}
			b, ok := pe.Mem.Read(mem.PA(pa), 1)
			if !ok {
				return 0, pe.external(va, kind, write)
			}
			out |= b << (8 * i)
		}
		return out, Exception{}
	}
	pa, e := pe.translate(va, acc, size, in)
	if e.Taken() {
		return 0, e
	}
	if write {
		if !pe.Mem.Write(mem.PA(pa), size, v) {
			return 0, pe.external(va, kind, write)
		}
		return 0, Exception{}
	}
	r, ok := pe.Mem.Read(mem.PA(pa), size)
	if !ok {
		return 0, pe.external(va, kind, write)
	}
	return r, Exception{}
}

// alignmentChecked reports SCTLR_ELx.A for the current regime.
func (pe *PE) alignmentChecked() bool {
	if pe.Regime() == vmsa.RegimeEL10 {
		return pe.Regs.SCTLR_EL1.A()
	}
	return pe.Regs.SCTLR_EL2.A()
}

// alignment takes an Alignment fault (FSC 0b100001).
func (pe *PE) alignment(va uint64, write bool) Exception {
	target := pe.targetEL()
	ec := uint64(sysreg.ECDataAbortSame)
	if target > pe.EL {
		ec = uint64(sysreg.ECDataAbortLower)
	}
	iss := uint64(0b100001)
	if write {
		iss |= 1 << 6
	}
	e := Exception{Kind: DataAbort, FromEL: pe.EL, TargetEL: target, FAR: va, ESR: sysreg.ESR(ec<<26 | 1<<25 | iss)}
	pe.TakeException(&e)
	return e
}

// external takes a synchronous External abort, not on a walk (FSC
// 0b010000): the PA the access translated to has no memory.
func (pe *PE) external(va uint64, kind vmsa.AccessKind, write bool) Exception {
	target := pe.targetEL()
	if pe.Regs.HCR_EL2.Has(hcrTEA) {
		target = 2
	}
	fetch := kind == vmsa.Fetch
	ec := uint64(sysreg.ECDataAbortSame)
	if fetch {
		ec = uint64(sysreg.ECInstrAbortSame)
	}
	if target > pe.EL {
		ec--
	}
	iss := uint64(0b010000)
	if write {
		iss |= 1 << 6
	}
	e := Exception{Kind: DataAbort, FromEL: pe.EL, TargetEL: target, FAR: va, External: true,
		ESR: sysreg.ESR(ec<<26 | 1<<25 | iss)}
	if fetch {
		e.Kind = InstructionAbort
	}
	pe.TakeException(&e)
	return e
}
