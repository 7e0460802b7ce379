package virt

import (
	"testing"

	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// A64 encodings for the hand-assembled guest hypervisor below.
func movz(rd, imm16, hw uint32) uint32 { return 0xd2800000 | hw<<21 | imm16<<5 | rd }
func movk(rd, imm16, hw uint32) uint32 { return 0xf2800000 | hw<<21 | imm16<<5 | rd }

// mov64 loads x into Xrd (MOVZ and three MOVK).
func mov64(rd uint32, x uint64) []uint32 {
	return []uint32{movz(rd, uint32(x)&0xffff, 0), movk(rd, uint32(x>>16)&0xffff, 1),
		movk(rd, uint32(x>>32)&0xffff, 2), movk(rd, uint32(x>>48)&0xffff, 3)}
}

// msr is MSR S<op0>_<op1>_C<crn>_C<crm>_<op2>, Xrt (op0 3).
func msr(op1, crn, crm, op2, rt uint32) uint32 {
	return 0xd5180000 | op1<<16 | crn<<12 | crm<<8 | op2<<5 | rt
}

// bl is BL from pc to target.
func bl(pc, target uint64) uint32 { return 0x94000000 | uint32((target-pc)/4)&0x3ffffff }

// TestNestedL0WriteDropsDecodedCode: a guest hypervisor (L1) whose stage-2
// table for its guest also holds code it executes (an L3 descriptor whose
// low word is EOR W23, W6, W7, LSL #imm6 with imm6[0] the descriptor's
// AF bit). L1 runs it once (decoded with AF=0: LSL #0), then its guest's
// load through that descriptor makes L0's walk of L1's stage 2 set AF
// (VTCR_EL2.HA) in L1's memory; L1 runs it again and must execute the new
// word (LSL #1). Without L0's write reaching the interpreter's decoded
// instructions (SetGuestWriteObserver, CPU.CodeWritten) it would execute
// the stale one. The descriptor's output has no device behind it, so the
// load is a synchronous External abort, which the guest turns into an HVC.
func TestNestedL0WriteDropsDecodedCode(t *testing.T) {
	const (
		entry  = 0x4000_0000 // L1's code
		l2Code = 0x4000_2000 // L2's code
		l2VBAR = 0x4000_3000 // L2's vectors
		l1VBAR = 0x4000_4000 // L1's vectors
		root   = 0x4001_0000 // L1's stage 2: level 1, level 2, level 3 (also code)
		lvl2   = 0x4001_1000
		lvl3   = 0x4002_0000
		dOff   = 0x800 // the descriptor of L2 IPA 0x40300000 in lvl3
		l2IPA  = 0x4030_0000
		// The descriptor's low word: EOR W23, W6, W7 (shift imm6 = AF),
		// which is also a valid page (bits[1:0]=11), Normal Non-cacheable
		// (MemAttr 0101), S2AP RW, AF=0. Its high word is B .+8 (0x14000002):
		// OA[39:32] = 2, IGNORED and software bits set, no device there.
		eor  = 0x4a0700d7
		bTwo = 0x14000002
		ret  = 0xd65f03c0
	)
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		b, err := NewNested(NestedConfig{Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		put := func(pa uint64, words ...uint32) {
			for i, w := range words {
				if err := b.write(mem.PA(pa+4*uint64(i)), 4, uint64(w)); err != nil {
					t.Fatal(err)
				}
			}
		}
		put64 := func(pa, x uint64) { put(pa, uint32(x), uint32(x>>32)) }
		put64(root+8*1, lvl2|3)                                                  // IPA 0x40000000-0x7fffffff: table
		put64(lvl2+8*0, 0x4000_0000|0xf<<2|3<<6|3<<8|1<<10|1)                    // 0x40000000-0x401fffff: block, identity
		put64(lvl2+8*1, lvl3|3)                                                  // 0x40200000-0x403fffff: table
		put(lvl3+dOff, eor, bTwo, 0, ret)                                        // descriptor 256 (code), 257 invalid (then RET)
		put(l2Code, 0xf9400020)                                                  // LDR X0, [X1]
		put(l2VBAR+0x200, 0xd4000022)                                            // HVC #1
		vtcr := uint64(25 | 1<<6 | 1<<8 | 1<<10 | 3<<12 | 2<<16 | 1<<21 | 1<<31) // 39-bit, level 1, 40-bit PS, HA
		var code []uint32
		code = append(code, movz(6, 0x10, 0), movz(7, 1, 0))
		code = append(code, bl(entry+4*uint64(len(code)), lvl3+dOff)) // X23 = 0x10 ^ 1 (decoded, AF=0)
		code = append(code, 0xaa1703f8)                               // MOV X24, X23
		code = append(code, mov64(0, l1VBAR)...)
		code = append(code, msr(4, 12, 0, 0, 0)) // VBAR_EL2
		code = append(code, mov64(0, vtcr)...)
		code = append(code, msr(4, 2, 1, 2, 0)) // VTCR_EL2
		code = append(code, mov64(0, root|1<<48)...)
		code = append(code, msr(4, 2, 1, 0, 0)) // VTTBR_EL2
		code = append(code, mov64(0, 1<<31|1)...)
		code = append(code, msr(4, 1, 1, 0, 0)) // HCR_EL2: RW, VM
		code = append(code, mov64(0, l2VBAR)...)
		code = append(code, msr(0, 12, 0, 0, 0)) // VBAR_EL1 (L2's)
		code = append(code, mov64(0, 0x3c5)...)
		code = append(code, msr(4, 4, 0, 0, 0)) // SPSR_EL2: EL1h
		code = append(code, mov64(0, l2Code)...)
		code = append(code, msr(4, 4, 0, 1, 0)) // ELR_EL2
		code = append(code, mov64(1, l2IPA)...)
		code = append(code, 0xd69f03e0) // ERET
		put(entry, code...)
		// L1's vector for L2's HVC: the descriptor's code again, then PSCI
		// SYSTEM_OFF.
		vec := uint64(l1VBAR + 0x400)
		off := []uint32{bl(vec, lvl3+dOff), movz(0, 8, 0), movk(0, 0x8400, 1), 0xd4000003} // SMC #0
		put(vec, off...)
		b.CPU.PE.PC = entry
		b.CPU.InvalidateCode()
		if err := b.Run(100_000); err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		if !b.Off {
			t.Fatalf("%v: the program did not power off", mode)
		}
		if got := b.CPU.X[24]; got != 0x11 {
			t.Errorf("%v: the first EOR gave %#x, want 0x10^1", mode, got)
		}
		if got := b.CPU.X[23]; got != 0x12 {
			t.Errorf("%v: after L0 set AF the descriptor executed as %#x, want 0x10^(1<<1) = 0x12 (0x11: the stale decoded word)", mode, got)
		}
	}
}

// TestNV2KeptEL2RegsRedirected: the guest hypervisor's VPIDR_EL2,
// VMPIDR_EL2, CNTVOFF_EL2 and HSTR_EL2 (FEAT_NV2's VNCR offsets 0x088,
// 0x050, 0x060, 0x080) read the reset values and what it wrote in both
// modes; with NV each access is an exit to L0 (EC 0x18), with NV2 none is
// (NVMem[offset] for HCR_EL2.<NV2,NV> '11': loads and stores of the page).
func TestNV2KeptEL2RegsRedirected(t *testing.T) {
	const entry = 0x4000_0000
	mrs := func(op1, crn, crm, op2, rt uint32) uint32 { return msr(op1, crn, crm, op2, rt) | 1<<21 }
	regs := []struct {
		name          string
		crn, crm, op2 uint32
		reset, val    uint64
	}{
		{"VPIDR_EL2", 0, 0, 0, 0xf0510, 0x411fd070},
		{"VMPIDR_EL2", 0, 0, 5, 0x80000000, 0x80000102},
		{"CNTVOFF_EL2", 14, 0, 3, 0, 0x123456789a},
		{"HSTR_EL2", 1, 1, 3, 0, 0xbfef},
	}
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		b, err := NewNested(NestedConfig{Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var code []uint32
		for i, r := range regs {
			code = append(code, mrs(4, r.crn, r.crm, r.op2, uint32(10+i)))
			code = append(code, mov64(1, r.val)...)
			code = append(code, msr(4, r.crn, r.crm, r.op2, 1))
			code = append(code, mrs(4, r.crn, r.crm, r.op2, uint32(20+i)))
		}
		code = append(code, movz(0, 8, 0), movk(0, 0x8400, 1), 0xd4000003) // PSCI SYSTEM_OFF (SMC)
		for i, w := range code {
			if err := b.write(mem.PA(entry+4*i), 4, uint64(w)); err != nil {
				t.Fatal(err)
			}
		}
		b.CPU.PE.PC = entry
		b.CPU.InvalidateCode()
		if err := b.Run(10_000); err != nil || !b.Off {
			t.Fatalf("%v: %v (off %v)", mode, err, b.Off)
		}
		for i, r := range regs {
			if got := b.CPU.X[10+i]; got != r.reset {
				t.Errorf("%v: %s reads %#x before any write, want the reset value %#x", mode, r.name, got, r.reset)
			}
			if got := b.CPU.X[20+i]; got != r.val {
				t.Errorf("%v: %s reads %#x after writing %#x", mode, r.name, got, r.val)
			}
		}
		want := uint64(0)
		if mode == nested.ModeNV {
			want = 3 * uint64(len(regs))
		}
		if got := b.VCPU.Stats().SysRegTraps; got != want {
			t.Errorf("%v: %d register traps, want %d", mode, got, want)
		}
	}
}
