package decode

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// ecNames are the exception classes of ESR_ELx.EC (DDI 0487, "ESR_EL2,
// Exception Syndrome Register (EL2)", field EC).
var ecNames = map[uint64]string{
	0x00: "Unknown reason",
	0x01: "Trapped WFI/WFE/WFIT/WFET",
	0x03: "Trapped MCR/MRC (coproc 0b1111, AArch32)",
	0x04: "Trapped MCRR/MRRC (coproc 0b1111, AArch32)",
	0x05: "Trapped MCR/MRC (coproc 0b1110, AArch32)",
	0x06: "Trapped LDC/STC (AArch32)",
	0x07: "Access to SVE, Advanced SIMD or floating-point trapped",
	0x08: "Trapped VMRS (AArch32 ID group 0)",
	0x09: "Pointer authentication instruction trapped",
	0x0a: "Trapped LD64B/ST64B* or other FEAT_LS64 instruction",
	0x0c: "Trapped MRRC (coproc 0b1110, AArch32)",
	0x0d: "Branch Target Exception",
	0x0e: "Illegal Execution state",
	0x11: "SVC (AArch32)",
	0x12: "HVC (AArch32)",
	0x13: "SMC (AArch32)",
	0x15: "SVC (AArch64)",
	0x16: "HVC (AArch64)",
	0x17: "SMC (AArch64)",
	0x18: "Trapped MSR, MRS or System instruction (AArch64)",
	0x19: "Access to SVE trapped",
	0x1a: "Trapped ERET, ERETAA or ERETAB",
	0x1c: "Pointer authentication failure (FPAC)",
	0x1d: "Access to SME trapped",
	0x1f: "IMPLEMENTATION DEFINED exception to EL3",
	0x20: "Instruction Abort from a lower Exception level",
	0x21: "Instruction Abort taken without a change in Exception level",
	0x22: "PC alignment fault",
	0x24: "Data Abort from a lower Exception level",
	0x25: "Data Abort taken without a change in Exception level",
	0x26: "SP alignment fault",
	0x27: "Memory Operation (FEAT_MOPS) exception",
	0x28: "Trapped floating-point exception (AArch32)",
	0x2c: "Trapped floating-point exception (AArch64)",
	0x2d: "Guarded Control Stack exception",
	0x2f: "SError",
	0x30: "Breakpoint from a lower Exception level",
	0x31: "Breakpoint without a change in Exception level",
	0x32: "Software Step from a lower Exception level",
	0x33: "Software Step without a change in Exception level",
	0x34: "Watchpoint from a lower Exception level",
	0x35: "Watchpoint without a change in Exception level",
	0x38: "BKPT (AArch32)",
	0x3a: "Vector Catch (AArch32)",
	0x3c: "BRK (AArch64)",
}

// FaultStatus describes a Data or Instruction Fault Status Code
// (ESR_ELx.{D,I}FSC, PAR_EL1.FST).
func FaultStatus(fsc uint64) string {
	lvl := func(base uint64) int { return int(fsc - base) }
	switch {
	case fsc <= 0b000011:
		return fmt.Sprintf("Address size fault, level %d", lvl(0))
	case fsc == 0b101001:
		return "Address size fault, level -1"
	case fsc >= 0b000100 && fsc <= 0b000111:
		return fmt.Sprintf("Translation fault, level %d", lvl(0b000100))
	case fsc == 0b101011:
		return "Translation fault, level -1"
	case fsc >= 0b001000 && fsc <= 0b001011:
		return fmt.Sprintf("Access flag fault, level %d", lvl(0b001000))
	case fsc >= 0b001100 && fsc <= 0b001111:
		return fmt.Sprintf("Permission fault, level %d", lvl(0b001100))
	case fsc == 0b010000:
		return "Synchronous External abort, not on a translation table walk"
	case fsc == 0b010001:
		return "Synchronous Tag Check Fault"
	case fsc == 0b010011:
		return "Synchronous External abort on a translation table walk, level -1"
	case fsc >= 0b010100 && fsc <= 0b010111:
		return fmt.Sprintf("Synchronous External abort on a translation table walk, level %d", lvl(0b010100))
	case fsc == 0b011000:
		return "Synchronous parity or ECC error, not on a translation table walk"
	case fsc == 0b011011:
		return "Synchronous parity or ECC error on a translation table walk, level -1"
	case fsc >= 0b011100 && fsc <= 0b011111:
		return fmt.Sprintf("Synchronous parity or ECC error on a translation table walk, level %d", lvl(0b011100))
	case fsc == 0b100001:
		return "Alignment fault"
	case fsc == 0b110000:
		return "TLB conflict abort"
	case fsc == 0b110001:
		return "Unsupported atomic hardware update fault"
	}
	return "reserved or not decoded here"
}

func esr(name string, v uint64) Decoded {
	ec := bits(v, 31, 26)
	ecName, ok := ecNames[ec]
	if !ok {
		ecName = "unallocated"
	}
	layout := []spec{
		{"ISS2", 36, 32, nil},
		{"EC", 31, 26, func(uint64) string { return ecName }},
		{"IL", 25, 25, choose("16-bit instruction (or not reported)", "32-bit instruction")},
	}
	switch ec {
	case 0x24, 0x25: // Data Abort
		if bits(v, 24, 24) == 1 {
			layout = append(layout,
				spec{"ISV", 24, 24, on("syndrome valid: SAS, SSE, SRT, SF, AR hold")},
				spec{"SAS", 23, 22, choose("byte", "halfword", "word", "doubleword")},
				spec{"SSE", 21, 21, on("sign-extended")},
				spec{"SRT", 20, 16, func(r uint64) string { return fmt.Sprintf("register X%d/W%d", r, r) }},
				spec{"SF", 15, 15, choose("32-bit register", "64-bit register")},
				spec{"AR", 14, 14, on("acquire/release")})
		} else {
			layout = append(layout, spec{"ISV", 24, 24, choose("no valid instruction syndrome (SAS..AR not reported)", "")})
		}
		layout = append(layout,
			spec{"VNCR", 13, 13, on("fault on an NV2 register access (VNCR_EL2)")},
			spec{"SET", 12, 11, nil},
			spec{"FnV", 10, 10, on("FAR not valid")},
			spec{"EA", 9, 9, nil},
			spec{"CM", 8, 8, on("cache maintenance or address translation instruction")},
			spec{"S1PTW", 7, 7, on("stage-2 fault on a stage-1 translation table walk")},
			spec{"WnR", 6, 6, choose("read", "write")},
			spec{"DFSC", 5, 0, FaultStatus})
	case 0x20, 0x21: // Instruction Abort
		layout = append(layout,
			spec{"SET", 12, 11, nil},
			spec{"FnV", 10, 10, on("FAR not valid")},
			spec{"EA", 9, 9, nil},
			spec{"S1PTW", 7, 7, on("stage-2 fault on a stage-1 translation table walk")},
			spec{"IFSC", 5, 0, FaultStatus})
	case 0x18: // MSR, MRS, System instruction
		layout = append(layout,
			spec{"Op0", 21, 20, nil},
			spec{"Op2", 19, 17, nil},
			spec{"Op1", 16, 14, nil},
			spec{"CRn", 13, 10, nil},
			spec{"Rt", 9, 5, func(r uint64) string { return fmt.Sprintf("X%d", r) }},
			spec{"CRm", 4, 1, nil},
			spec{"Direction", 0, 0, choose("write (MSR, SYS)", "read (MRS, SYSL)")})
	case 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x3c:
		layout = append(layout, spec{"imm16", 15, 0, nil})
	case 0x01:
		layout = append(layout, spec{"TI", 1, 0, choose("WFI", "WFE", "WFIT", "WFET")})
	default:
		layout = append(layout, spec{"ISS", 24, 0, nil})
	}
	d := apply(name, v, layout)
	e := sysreg.ESR(v)
	d.Summary = ecName
	switch ec {
	case 0x24, 0x25:
		d.Summary = fmt.Sprintf("%s: %s, %s", ecName, FaultStatus(uint64(e.FSC())), choose("read", "write")(bits(v, 6, 6)))
		if e.S1PTW() {
			d.Summary += ", on a stage-1 table walk"
		}
		if e.CM() {
			d.Summary += ", by a cache maintenance or AT instruction"
		}
	case 0x20, 0x21:
		d.Summary = fmt.Sprintf("%s: %s", ecName, FaultStatus(uint64(e.FSC())))
	case 0x18:
		d.Summary = fmt.Sprintf("%s: op0=%d op1=%d CRn=%d CRm=%d op2=%d, X%d, %s", ecName, bits(v, 21, 20), bits(v, 16, 14),
			bits(v, 13, 10), bits(v, 4, 1), bits(v, 19, 17), bits(v, 9, 5), choose("write", "read")(bits(v, 0, 0)))
	}
	return d
}

func par(v uint64) Decoded {
	p := sysreg.PAR(v)
	if p.F() {
		d := apply("PAR_EL1", v, []spec{
			{"F", 0, 0, choose("", "translation aborted")},
			{"FST", 6, 1, FaultStatus},
			{"PTW", 8, 8, on("stage-2 fault during the stage-1 walk")},
			{"S", 9, 9, choose("stage 1 fault", "stage 2 fault")},
			{"RES1", 11, 11, nil},
		})
		stage := "stage 1"
		if p.S() {
			stage = "stage 2"
		}
		d.Summary = fmt.Sprintf("aborted: %s, %s", FaultStatus(uint64(p.FST())), stage)
		if p.PTW() {
			d.Summary += " on the stage-1 walk"
		}
		return d
	}
	d := apply("PAR_EL1", v, []spec{
		{"F", 0, 0, choose("translation succeeded", "")},
		{"SH", 8, 7, shNames},
		{"NS", 9, 9, nil},
		{"RES1", 11, 11, nil},
		{"PA", 51, 12, func(x uint64) string { return fmt.Sprintf("PA %#x", x<<12) }},
		{"ATTR", 63, 56, mairAttr},
	})
	d.Summary = fmt.Sprintf("PA %#x, %s, %s", p.PA(), mairAttr(uint64(p.ATTR())), shNames(uint64(p.SH())))
	return d
}
