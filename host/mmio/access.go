// Package mmio turns a guest's stage-2 Data Abort on an address without
// memory into an MMIO access the host can emulate, and applies the result
// back to the guest's registers.
//
// The stage-2 fault handler calls Decode when the faulting IPA is outside
// every memslot (or is a write to a read-only slot). With ESR_EL2.ISV=1 the
// access comes from the syndrome alone (DecodeSyndrome); with ISV=0 the
// faulting instruction, fetched by the caller through the guest's own
// translation, is decoded (DecodeInstruction), its address recomputed from
// the guest's registers and cross-checked against FAR_EL2. Anything that
// cannot be emulated yields an error matching ErrCannotEmulate, and the
// handler injects an abort into the guest.
//
// Once the device has answered, CompleteLoad and CompleteStore (or Emulate,
// which does the whole round trip against a Bus) update the destination and
// base registers. Advancing the guest PC past the instruction is the
// caller's job.
package mmio

import (
	"errors"
	"fmt"
	"math/bits"
)

// Access is one decoded MMIO access. For a pair, the two registers are
// transferred as two accesses of Size bytes at IPA and IPA2 = IPA + Size.
type Access struct {
	IPA            uint64 // IPA of the (first) access
	VA             uint64 // guest virtual address of the (first) access
	Size           uint8  // bytes per register: 1, 2, 4 or 8
	Write          bool   // store
	Reg            uint8  // transfer register Rt; 31 is XZR/WZR
	SignExtend     bool   // load sign-extends the item (SSE)
	Sixtyfour      bool   // transfer register is an X register (SF)
	AcquireRelease bool   // load-acquire/store-release (AR)
	Pair           bool   // second register Reg2 at IPA2
	Reg2           uint8  // second transfer register of a pair
	IPA2           uint64 // IPA of the second access of a pair
	Writeback      bool   // base register Base becomes NewBase
	Base           uint8  // with Writeback: base register; 31 is SP
	NewBase        uint64 // with Writeback: written back to Base after the access
	// Data holds, for a store, the register value(s) truncated to Size
	// (Data[1] for Reg2); for a load it is unused.
	Data [2]uint64
}

// Len returns the number of bytes the access transfers in total.
func (a *Access) Len() int {
	if a.Pair {
		return 2 * int(a.Size)
	}
	return int(a.Size)
}

// Registers is the guest's general-purpose register file as seen by the
// decoder. X and SetX take 0..30; register number 31 is resolved by this
// package (the zero register for data, SP for a base). SP is the stack
// pointer selected by the guest's PSTATE.SP at the faulting EL, and PC the
// address of the faulting instruction (ELR_EL2).
type Registers interface {
	X(n int) uint64
	SetX(n int, v uint64)
	SP() uint64
	SetSP(v uint64)
	PC() uint64
}

// Fetcher reads the faulting instruction word at the guest's PC through the
// guest's own stage-1 and stage-2 translation. It is only called when the
// syndrome is not valid.
type Fetcher interface {
	FetchInstruction() (uint32, error)
}

// FetchFunc adapts a function to Fetcher.
type FetchFunc func() (uint32, error)

// FetchInstruction calls f.
func (f FetchFunc) FetchInstruction() (uint32, error) { return f() }

// checkAbort validates the parts of the syndrome common to both paths.
func checkAbort(esr ESR) error {
	if ec := esr.EC(); ec != ECDataAbortLowerEL {
		return errorf(ErrNotDataAbort, "ESR 0x%x: exception class 0x%02x is not a data abort from a lower EL", uint64(esr), ec)
	}
	if esr.CM() {
		return errorf(ErrCacheMaintenance, "ESR 0x%x: CM=1, cache maintenance on an address without memory", uint64(esr))
	}
	if esr.S1PTW() {
		// The guest's stage-1 tables are outside memory: KVM injects an
		// abort rather than walking tables through MMIO.
		return errorf(ErrCannotEmulate, "ESR 0x%x: S1PTW=1, stage-1 table walk to an address without memory", uint64(esr))
	}
	if esr.VNCR() {
		// A fault on the page VNCR_EL2 points to belongs to the nested
		// virtualization code, not to a device.
		return errorf(ErrCannotEmulate, "ESR 0x%x: VNCR=1, fault on the VNCR_EL2 page", uint64(esr))
	}
	if dfsc := esr.DFSC(); !mmioFault(dfsc) {
		return errorf(ErrCannotEmulate, "ESR 0x%x: DFSC 0x%02x is not a translation, access flag or permission fault", uint64(esr), dfsc)
	}
	if esr.EA() {
		return errorf(ErrCannotEmulate, "ESR 0x%x: EA=1, external abort", uint64(esr))
	}
	if esr.FnV() {
		return errorf(ErrCannotEmulate, "ESR 0x%x: FnV=1, FAR not valid so the byte address is unknown", uint64(esr))
	}
	return nil
}

// DecodeSyndrome decodes an access from a Data Abort syndrome with ISV=1.
// far is FAR_EL2 and ipa the faulting IPA (see FaultIPA). It does not read
// registers, so Data is left zero; call ReadStoreData for a store.
// DecodeSyndrome does not allocate unless it fails.
func DecodeSyndrome(esr ESR, far, ipa uint64) (Access, error) {
	if err := checkAbort(esr); err != nil {
		return Access{}, err
	}
	if !esr.ISV() {
		return Access{}, errorf(ErrNoSyndrome, "ESR 0x%x: ISV=0", uint64(esr))
	}
	a := Access{
		IPA:            ipa,
		VA:             far,
		Size:           1 << esr.SAS(),
		Write:          esr.WnR(),
		Reg:            esr.SRT(),
		SignExtend:     esr.SSE(),
		Sixtyfour:      esr.SF(),
		AcquireRelease: esr.AR(),
	}
	if a.Write {
		// SSE only describes loads.
		a.SignExtend = false
	}
	// A64 has no 64-bit access into a W register and no sign-extending
	// 64-bit or W-destination word load, so the syndrome cannot describe one.
	switch {
	case a.Size == 8 && !a.Sixtyfour:
		return Access{}, errorf(ErrCannotEmulate, "ESR 0x%x: inconsistent syndrome: SAS=0b11 with SF=0", uint64(esr))
	case a.SignExtend && a.Size == 8:
		return Access{}, errorf(ErrCannotEmulate, "ESR 0x%x: inconsistent syndrome: SSE=1 with SAS=0b11", uint64(esr))
	case a.SignExtend && a.Size == 4 && !a.Sixtyfour:
		return Access{}, errorf(ErrCannotEmulate, "ESR 0x%x: inconsistent syndrome: SSE=1, SAS=0b10 with SF=0", uint64(esr))
	}
	return a, nil
}

// Decode decodes the MMIO access of a stage-2 Data Abort: from the syndrome
// when ESR.ISV=1, otherwise from the instruction fetched with fetch. For a
// store, Data is filled from regs. far is FAR_EL2 and ipa the faulting IPA.
func Decode(esr ESR, far, ipa uint64, regs Registers, fetch Fetcher) (Access, error) {
	if regs == nil {
		return Access{}, errors.New("mmio: Decode with nil Registers")
	}
	if esr.ISV() {
		a, err := DecodeSyndrome(esr, far, ipa)
		if err != nil {
			return Access{}, err
		}
		a.ReadStoreData(regs)
		return a, nil
	}
	if err := checkAbort(esr); err != nil {
		return Access{}, err
	}
	if !esr.IL() {
		return Access{}, errorf(ErrCannotEmulate, "ESR 0x%x: IL=0, a 16-bit T32 instruction; only A64 is decoded", uint64(esr))
	}
	if fetch == nil {
		return Access{}, fmt.Errorf("mmio: ESR 0x%x has ISV=0 but no Fetcher was given", uint64(esr))
	}
	word, err := fetch.FetchInstruction()
	if err != nil {
		return Access{}, err
	}
	in, err := DecodeInstruction(word)
	if err != nil {
		return Access{}, err
	}
	return in.Access(esr, far, ipa, regs)
}

// minPage is the smallest translation granule. An access that crosses a
// 4KB boundary may span two pages with unrelated IPAs, of which the fault
// only names one.
const minPage = 4096

// Access computes the access an instruction decoded with ISV=0 makes, using
// the guest's registers for the base, index and store data, and checks it
// against the fault: FAR must lie inside the accessed bytes and WnR must
// match the direction. far is FAR_EL2 and ipa the faulting IPA.
func (in *Insn) Access(esr ESR, far, ipa uint64, regs Registers) (Access, error) {
	if esr.WnR() != in.Write {
		return Access{}, errorf(ErrAddressMismatch, "instruction 0x%08x (%s): write=%t but ESR.WnR=%t", in.Word, in.Op, in.Write, esr.WnR())
	}
	va, newBase := in.address(regs)
	a := Access{
		VA:             va,
		Size:           in.Size,
		Write:          in.Write,
		Reg:            in.Rt,
		SignExtend:     in.SignExtend,
		Sixtyfour:      in.Sixtyfour,
		AcquireRelease: in.AcquireRelease,
		Pair:           in.Pair,
		Reg2:           in.Rt2,
		Writeback:      in.Writeback,
	}
	if a.Writeback {
		a.Base, a.NewBase = in.Rn, newBase
	}
	n := uint64(a.Len())
	// FAR may name any byte of the faulting access; bits 63:56 are compared
	// out because they are the ignored tag under TBI and otherwise equal to
	// bit 55 for any address that got through stage 1.
	const va56 = 1<<56 - 1
	d := (far - va) & va56
	if d >= n {
		return Access{}, errorf(ErrAddressMismatch, "instruction 0x%08x (%s): accesses VA 0x%x size %d but FAR is 0x%x", in.Word, in.Op, va, n, far)
	}
	if va%minPage+n > minPage {
		return Access{}, errorf(ErrCannotEmulate, "instruction 0x%08x (%s): access at VA 0x%x size %d crosses a page boundary", in.Word, in.Op, va, n)
	}
	a.IPA = ipa - d
	if a.Pair {
		a.IPA2 = a.IPA + uint64(a.Size)
	}
	a.ReadStoreData(regs)
	return a, nil
}

// address returns the virtual address the instruction accesses and the
// value a pre/post-index form writes back to the base register.
func (in *Insn) address(regs Registers) (va, newBase uint64) {
	var base uint64
	switch {
	case in.Mode == ModeLiteral:
		base = regs.PC()
	case in.Rn == 31:
		base = regs.SP()
	default:
		base = regs.X(int(in.Rn))
	}
	off := uint64(in.Imm)
	if in.RegOffset {
		off = extendReg(xzr(regs, in.Rm), in.Extend, in.Shift)
	}
	if in.Mode == ModePostIndex {
		return base, base + off
	}
	return base + off, base + off
}

// extendReg is the Arm ARM ExtendReg for the extend types a load/store can
// encode.
func extendReg(v uint64, ext Extend, shift uint8) uint64 {
	switch ext {
	case ExtendUXTW:
		v = uint64(uint32(v))
	case ExtendSXTW:
		v = uint64(int64(int32(uint32(v))))
	}
	return v << shift
}

// xzr reads a data register where 31 is the zero register.
func xzr(regs Registers, n uint8) uint64 {
	if n == 31 {
		return 0
	}
	return regs.X(int(n))
}

// sizeMask returns a mask of size bytes.
func sizeMask(size uint8) uint64 {
	if size >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*uint(size)) - 1
}

// ReadStoreData fills Data for a store with the transfer register value(s)
// truncated to Size (XZR/WZR read as zero). It does nothing for a load.
// Constraint_NONE for a store whose base overlaps a transfer register means
// the value stored is the register before writeback, which is what is read
// here, before any writeback is applied.
func (a *Access) ReadStoreData(regs Registers) {
	if !a.Write {
		return
	}
	m := sizeMask(a.Size)
	a.Data[0] = xzr(regs, a.Reg) & m
	if a.Pair {
		a.Data[1] = xzr(regs, a.Reg2) & m
	}
}

// LoadValue returns the register value a load of raw (the device's
// little-endian value, of which the low Size bytes are used) produces:
// zero- or sign-extended to the register width, and the upper 32 bits
// cleared for a W register.
func (a *Access) LoadValue(raw uint64) uint64 {
	v := raw & sizeMask(a.Size)
	if a.SignExtend && a.Size < 8 {
		w := uint(8 * a.Size)
		v = uint64(int64(v<<(64-w)) >> (64 - w))
	}
	if !a.Sixtyfour {
		v &= 0xffffffff
	}
	return v
}

// setX writes a data register where 31 is the zero register (writes are
// discarded).
func setX(regs Registers, n uint8, v uint64) {
	if n != 31 {
		regs.SetX(int(n), v)
	}
}

// writeBack applies the base register update.
func (a *Access) writeBack(regs Registers) {
	if !a.Writeback {
		return
	}
	if a.Base == 31 {
		regs.SetSP(a.NewBase)
	} else {
		regs.SetX(int(a.Base), a.NewBase)
	}
}

// CompleteLoad finishes a load with the device data (data[1] for the second
// register of a pair): it writes the destination register(s) and then the
// base. For LDP with Rt == Rt2 (Unpredictable_LDPOVERLAP, Constraint_UNKNOWN)
// the register ends up holding the second value.
func (a *Access) CompleteLoad(data [2]uint64, regs Registers) {
	setX(regs, a.Reg, a.LoadValue(data[0]))
	if a.Pair {
		setX(regs, a.Reg2, a.LoadValue(data[1]))
	}
	a.writeBack(regs)
}

// CompleteStore finishes a store once the device has taken Data: it writes
// the base back.
func (a *Access) CompleteStore(regs Registers) { a.writeBack(regs) }

// Bus is the device side of an MMIO access. Values are the device's view of
// Size bytes in little-endian order; a big-endian guest (SCTLR_ELx.EE/E0E)
// needs its bytes reversed with ByteSwap on the way.
type Bus interface {
	Read(ipa uint64, size int) (uint64, error)
	Write(ipa uint64, size int, v uint64) error
}

// Emulate performs a decoded access against bus and completes it in regs.
// Nothing is written to regs unless every device access succeeded.
func Emulate(a *Access, regs Registers, bus Bus) error {
	if a.Write {
		if err := bus.Write(a.IPA, int(a.Size), a.Data[0]); err != nil {
			return err
		}
		if a.Pair {
			if err := bus.Write(a.IPA2, int(a.Size), a.Data[1]); err != nil {
				return err
			}
		}
		a.CompleteStore(regs)
		return nil
	}
	var data [2]uint64
	var err error
	if data[0], err = bus.Read(a.IPA, int(a.Size)); err != nil {
		return err
	}
	if a.Pair {
		if data[1], err = bus.Read(a.IPA2, int(a.Size)); err != nil {
			return err
		}
	}
	a.CompleteLoad(data, regs)
	return nil
}

// ByteSwap reverses the low size bytes of v (size 1, 2, 4 or 8), for a
// guest whose data accesses are big-endian.
func ByteSwap(v uint64, size uint8) uint64 {
	switch size {
	case 2:
		return uint64(bits.ReverseBytes16(uint16(v)))
	case 4:
		return uint64(bits.ReverseBytes32(uint32(v)))
	case 8:
		return bits.ReverseBytes64(v)
	}
	return v & 0xff
}
