package mmio

import (
	"encoding/binary"
	"strings"
	"sync"

	"golang.org/x/arch/arm64/arm64asm"
)

// Mode is the addressing mode of a decoded load/store.
type Mode uint8

// Addressing modes. Offset covers the scaled unsigned immediate, the
// unscaled (LDUR), unprivileged (LDTR), ordered (LDAR, offset 0),
// non-temporal pair and register-offset forms; only PreIndex and PostIndex
// write the base back.
const (
	ModeOffset    Mode = iota + 1 // address = base + offset
	ModePreIndex                  // address = base + offset; base = address
	ModePostIndex                 // address = base; base = base + offset
	ModeLiteral                   // address = PC + offset
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case ModeOffset:
		return "offset"
	case ModePreIndex:
		return "pre-index"
	case ModePostIndex:
		return "post-index"
	case ModeLiteral:
		return "literal"
	}
	return "Mode(invalid)"
}

// Extend is the index-register transformation of the register-offset form
// (Arm ARM DecodeRegExtend; only the four encodings allowed by
// option<1> == 1 exist for loads and stores).
type Extend uint8

// Extend values, numbered as the option field.
const (
	ExtendUXTW Extend = 0b010 // zero-extend Wm
	ExtendLSL  Extend = 0b011 // Xm (UXTX, written LSL)
	ExtendSXTW Extend = 0b110 // sign-extend Wm
	ExtendSXTX Extend = 0b111 // Xm
)

// Insn is a decoded A64 general-purpose load or store, independent of any
// register values.
type Insn struct {
	Word           uint32      // the instruction word
	Op             arm64asm.Op // the mnemonic as arm64asm decodes it
	Size           uint8       // bytes transferred per register: 1, 2, 4 or 8
	Write          bool        // store
	SignExtend     bool        // load sign-extends the item
	Sixtyfour      bool        // transfer register(s) are X registers
	AcquireRelease bool        // LDAR/STLR
	Pair           bool        // LDP/STP/LDPSW/LDNP/STNP
	Unprivileged   bool        // LDTR/STTR
	Rt, Rt2        uint8       // transfer registers; 31 is XZR/WZR
	Rn             uint8       // base register; 31 is SP
	Mode           Mode
	Imm            int64 // byte offset for the immediate and literal forms
	RegOffset      bool  // the offset is register Rm, extended and shifted
	Rm             uint8 // index register; 31 is XZR
	Extend         Extend
	Shift          uint8 // left shift of the extended index
	// Writeback is true for pre/post-index unless the constrained
	// unpredictable overlap of base and transfer register suppresses it.
	Writeback bool
}

// asmMu serialises arm64asm.Decode, which records decoder coverage in a
// package-level slice of the library and so races when called concurrently.
// It is the only mutable state of this package.
var asmMu sync.Mutex

func asmDecode(word uint32) (arm64asm.Inst, error) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], word)
	asmMu.Lock()
	defer asmMu.Unlock()
	return arm64asm.Decode(b[:])
}

// isMemOp reports whether an arm64asm opcode is a memory access: every
// A64 load, store and prefetch mnemonic the library knows begins with LD, ST
// or PRF, and no other mnemonic does.
func isMemOp(op arm64asm.Op) bool {
	s := op.String()
	return strings.HasPrefix(s, "LD") || strings.HasPrefix(s, "ST") || strings.HasPrefix(s, "PRF")
}

// DecodeInstruction decodes an A64 instruction word that caused a Data Abort
// with ISV=0. The word is validated by arm64asm; the fields are extracted
// from the encoding as the Arm ARM's decode pseudocode does. Instructions
// that access memory in a way that cannot be emulated (SIMD&FP registers,
// exclusives, prefetch, pointer authentication) are refused with an error
// matching ErrCannotEmulate.
func DecodeInstruction(word uint32) (Insn, error) {
	inst, err := asmDecode(word)
	if err != nil {
		return Insn{}, errorf(ErrUnallocated, "unallocated encoding 0x%08x", word)
	}
	if !isMemOp(inst.Op) {
		return Insn{}, errorf(ErrNotLoadStore, "instruction 0x%08x (%s): not a load/store", word, inst)
	}
	in, reason := decodeLoadStore(word)
	if reason != "" {
		return Insn{}, errorf(ErrCannotEmulate, "instruction 0x%08x (%s): %s", word, inst, reason)
	}
	in.Op = inst.Op
	return in, nil
}

func field(x uint32, hi, lo uint) uint32 { return x >> lo & (1<<(hi-lo+1) - 1) }

func sext(v uint64, width uint) int64 { return int64(v<<(64-width)) >> (64 - width) }

// decodeLoadStore extracts the fields of an A64 load/store word. It returns
// a non-empty reason when the word is not an emulable general-purpose
// register access. Encodings follow the A64 "Loads and Stores" decode
// tables (op0 = x1x0).
func decodeLoadStore(w uint32) (Insn, string) {
	in := Insn{Word: w, Rt: uint8(field(w, 4, 0)), Rn: uint8(field(w, 9, 5))}
	if field(w, 27, 27) != 1 || field(w, 25, 25) != 0 {
		return in, "not in the load/store encoding space"
	}
	if field(w, 26, 26) == 1 {
		// V=1: SIMD&FP registers. KVM does not emulate these; their
		// data would live in the FP/SIMD register file.
		return in, "SIMD&FP register transfer"
	}
	switch {
	case field(w, 29, 24) == 0b001000:
		return decodeOrdered(in)
	case field(w, 29, 27) == 0b011 && field(w, 25, 24) == 0b00:
		return decodeLiteral(in)
	case field(w, 29, 27) == 0b101:
		return decodePair(in)
	case field(w, 29, 27) == 0b111 && field(w, 25, 24) == 0b01:
		// Load/store register (unsigned immediate): imm12 scaled by size.
		in.Mode = ModeOffset
		in.Imm = int64(field(w, 21, 10)) << field(w, 31, 30)
		return decodeSingle(in, true)
	case field(w, 29, 27) == 0b111 && field(w, 25, 24) == 0b00 && field(w, 21, 21) == 0:
		in.Imm = sext(uint64(field(w, 20, 12)), 9)
		switch field(w, 11, 10) {
		case 0b00: // LDUR/STUR
			in.Mode = ModeOffset
			return decodeSingle(in, true)
		case 0b01:
			in.Mode = ModePostIndex
		case 0b10: // LDTR/STTR
			in.Mode = ModeOffset
			in.Unprivileged = true
		case 0b11:
			in.Mode = ModePreIndex
		}
		return decodeSingle(in, false)
	case field(w, 29, 27) == 0b111 && field(w, 25, 24) == 0b00 && field(w, 11, 10) == 0b10:
		// Load/store register (register offset).
		opt := Extend(field(w, 15, 13))
		if opt&0b010 == 0 {
			return in, "register offset with a reserved extend option" // option<1> == '0': UNDEFINED
		}
		in.Mode = ModeOffset
		in.RegOffset = true
		in.Rm = uint8(field(w, 20, 16))
		in.Extend = opt
		if field(w, 12, 12) == 1 {
			in.Shift = uint8(field(w, 31, 30)) // shift = if S == '1' then scale else 0
		}
		return decodeSingle(in, true)
	case field(w, 29, 27) == 0b111 && field(w, 25, 24) == 0b00 && field(w, 11, 10) == 0b00:
		return in, "atomic memory operation"
	case field(w, 29, 27) == 0b111 && field(w, 25, 24) == 0b00 && field(w, 10, 10) == 1:
		return in, "pointer-authenticated load (LDRAA/LDRAB)"
	}
	return in, "unsupported load/store class"
}

// decodeSingle decodes size:opc of the single-register forms as the shared
// load/store register pseudocode does. prefetchOK tells whether size=11,
// opc=1x is PRFM here (offset forms) rather than unallocated (indexed and
// unprivileged forms).
func decodeSingle(in Insn, prefetchOK bool) (Insn, string) {
	w := in.Word
	size := field(w, 31, 30)
	opc := field(w, 23, 22)
	in.Size = 1 << size
	switch {
	case opc&2 == 0: // STR/LDR: zero-extending, regsize 64 only for size 11
		in.Write = opc == 0
		in.Sixtyfour = size == 3
	case size == 3: // PRFM or unallocated
		if prefetchOK && opc == 2 {
			return in, "prefetch (PRFM/PRFUM) does not access memory"
		}
		return in, "unallocated size/opc for a load/store"
	default: // LDRS*: opc<0> selects a W destination
		if size == 2 && opc == 3 {
			return in, "unallocated size/opc for a load/store"
		}
		in.SignExtend = true
		in.Sixtyfour = opc == 2
	}
	return finishIndexed(in), ""
}

// finishIndexed applies the writeback rules shared by single and pair forms.
func finishIndexed(in Insn) Insn {
	in.Writeback = in.Mode == ModePreIndex || in.Mode == ModePostIndex
	overlap := in.Rn == in.Rt || (in.Pair && in.Rn == in.Rt2)
	if in.Writeback && overlap && in.Rn != 31 && !in.Write {
		// Unpredictable_WBOVERLAPLD: this implementation takes
		// Constraint_WBSUPPRESS (the loaded value wins, no writeback).
		// For stores (WBOVERLAPST) it takes Constraint_NONE: the
		// original register value is stored and the base written back.
		in.Writeback = false
	}
	return in
}

// decodeLiteral decodes LDR (literal) and LDRSW (literal).
func decodeLiteral(in Insn) (Insn, string) {
	w := in.Word
	in.Mode = ModeLiteral
	in.Rn = 0
	in.Imm = sext(uint64(field(w, 23, 5))<<2, 21)
	switch field(w, 31, 30) {
	case 0b00:
		in.Size, in.Sixtyfour = 4, false
	case 0b01:
		in.Size, in.Sixtyfour = 8, true
	case 0b10:
		in.Size, in.Sixtyfour, in.SignExtend = 4, true, true
	default:
		return in, "prefetch (PRFM literal) does not access memory"
	}
	return in, ""
}

// decodePair decodes the load/store pair forms (LDP, STP, LDPSW, LDNP, STNP).
func decodePair(in Insn) (Insn, string) {
	w := in.Word
	opc := field(w, 31, 30)
	load := field(w, 22, 22) == 1
	mode := field(w, 24, 23)
	in.Pair = true
	in.Rt2 = uint8(field(w, 14, 10))
	in.Write = !load
	switch opc {
	case 0b00:
		in.Size = 4
	case 0b01:
		if mode == 0b00 {
			return in, "unallocated opc for a non-temporal pair"
		}
		if !load {
			return in, "STGP stores allocation tags"
		}
		in.Size, in.SignExtend, in.Sixtyfour = 4, true, true // LDPSW
	case 0b10:
		in.Size, in.Sixtyfour = 8, true
	default:
		return in, "unallocated opc for a load/store pair"
	}
	// scale = 2 + UInt(opc<1>); the offset is imm7 scaled by the element size.
	in.Imm = sext(uint64(field(w, 21, 15)), 7) << (2 + opc>>1)
	switch mode {
	case 0b00, 0b10:
		in.Mode = ModeOffset
	case 0b01:
		in.Mode = ModePostIndex
	case 0b11:
		in.Mode = ModePreIndex
	}
	return finishIndexed(in), ""
}

// decodeOrdered decodes the load-acquire/store-release forms of the
// exclusive/ordered class and refuses the exclusive ones.
func decodeOrdered(in Insn) (Insn, string) {
	w := in.Word
	o2, l, o1, o0 := field(w, 23, 23), field(w, 22, 22), field(w, 21, 21), field(w, 15, 15)
	if o2 == 0 || o1 == 1 {
		// An exclusive monitor cannot be kept for an access the hypervisor
		// performs on the guest's behalf, and exclusives to Device memory
		// are not guaranteed to work anyway (B2.17); atomics (CAS*) are
		// read-modify-write.
		return in, "exclusive or atomic access"
	}
	if o0 == 0 {
		return in, "LORegion ordered access (LDLAR/STLLR)"
	}
	size := field(w, 31, 30)
	in.Size = 1 << size
	in.Write = l == 0
	in.Sixtyfour = size == 3
	in.AcquireRelease = true
	in.Mode = ModeOffset
	return in, ""
}
