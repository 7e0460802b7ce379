package cp0

import "fmt"

// OpKind is one guest-visible operation.
type OpKind uint8

// Operations a guest program is made of. Loads, stores and fetches are
// executed by the "hardware"; the CP0 instructions, CACHE, SYSCALL and ERET
// trap to KVM and are emulated. KVMRead is KVM reading the guest's
// instruction at VA to emulate it (its guest-visible behaviour is that of
// an instruction fetch). FlushAll and HarvestDirty are host-side requests
// with no guest-visible effect.
const (
	OpLoad OpKind = iota
	OpStore
	OpFetch
	OpKVMRead
	OpCache
	OpMTC0
	OpMFC0
	OpTLBP
	OpTLBR
	OpTLBWI
	OpTLBWR
	OpERET
	OpSyscall
	OpFlushAll
	OpHarvestDirty
	NumOpKinds
)

var opNames = [...]string{"load", "store", "fetch", "kvmread", "cache", "mtc0", "mfc0", "tlbp", "tlbr", "tlbwi", "tlbwr", "eret", "syscall", "flushall", "harvestdirty"}

// String names the operation.
func (k OpKind) String() string {
	if int(k) < len(opNames) {
		return opNames[k]
	}
	return fmt.Sprintf("op%d", uint8(k))
}

// Op is one operation with the address of the instruction performing it.
type Op struct {
	Kind  OpKind
	PC    uint32 // address of the instruction
	BD    bool   // the instruction is in a branch delay slot
	VA    uint32 // load/store/fetch/cache address
	Size  uint8  // load/store size in bytes: 1, 2 or 4
	Reg   uint8  // MTC0/MFC0 register
	Sel   uint8  // MTC0/MFC0 select
	Value uint32 // store or MTC0 value
}

// String renders the operation for failure messages.
func (o Op) String() string {
	switch o.Kind {
	case OpLoad, OpFetch, OpKVMRead, OpCache:
		return fmt.Sprintf("%v%d %#x @pc %#x bd=%v", o.Kind, o.Size, o.VA, o.PC, o.BD)
	case OpStore:
		return fmt.Sprintf("store%d %#x <- %#x @pc %#x bd=%v", o.Size, o.VA, o.Value, o.PC, o.BD)
	case OpMTC0:
		return fmt.Sprintf("mtc0 $%d,%d <- %#x", o.Reg, o.Sel, o.Value)
	case OpMFC0:
		return fmt.Sprintf("mfc0 $%d,%d", o.Reg, o.Sel)
	}
	return fmt.Sprintf("%v @pc %#x", o.Kind, o.PC)
}

// Outcome classifies a Result.
type Outcome uint8

// Outcomes.
const (
	Done      Outcome = iota // completed; Value holds any value read
	Exception                // an exception was delivered to the guest
	MMIO                     // completed as an MMIO access (emulated device)
	Internal                 // KVM cannot emulate it (KVM_EXIT_INTERNAL_ERROR)
)

var outcomeNames = [...]string{"done", "exception", "mmio", "internal"}

// String names the outcome.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome%d", uint8(o))
}

// Result is what an operation did, as the guest can observe it.
type Result struct {
	Outcome Outcome
	Code    ExcCode // exception code when Outcome == Exception
	PC      uint32  // next PC after an exception (the vector) or ERET
	// Guest registers after an exception.
	BadVAddr, EntryHi, EPC, Cause uint32
	Value                         uint32 // value loaded, fetched, read by MFC0, or Index after TLBP
}

// String renders the result for failure messages.
func (r Result) String() string {
	if r.Outcome == Exception {
		return fmt.Sprintf("exception %v vector %#x BadVAddr %#x EntryHi %#x EPC %#x Cause %#x", r.Code, r.PC, r.BadVAddr, r.EntryHi, r.EPC, r.Cause)
	}
	return fmt.Sprintf("%v value %#x pc %#x", r.Outcome, r.Value, r.PC)
}

// Machine executes guest operations. The trap-and-emulate engine and the
// reference model both implement it.
type Machine interface {
	// Exec performs one operation.
	Exec(op Op) Result
	// CP0 returns register (reg, sel) as the guest would read it with MFC0.
	CP0(reg, sel uint8) uint32
	// TLBEntry returns guest TLB entry i.
	TLBEntry(i int) Entry
}

// ResultWriter is implemented by machines that can take an operation and
// store its result in place. Loops that run many operations use it when
// they can: a returned Result (more fields than Go keeps in registers) is
// copied through memory with wide loads that wait on the narrow stores of
// its fields, and an Op passed by value is stored again by the callee. A
// type that wraps a machine and changes its Exec must change ExecInto the
// same way, or not have it.
type ResultWriter interface {
	// ExecInto is Exec of *op (which it only reads) storing the result
	// in *r.
	ExecInto(op *Op, r *Result)
}

// MMIODevice is the emulated device behind guest MMIO accesses: loads and
// stores in guest kernel mode to host KSeg0/1 addresses (physical address =
// address & 0x1fffffff). A guest physical address that is not RAM is not
// MMIO under trap-and-emulate: KVM reports an internal error.
type MMIODevice interface {
	Read(pa uint64, size uint8) uint32
	Write(pa uint64, size uint8, v uint32)
}

// ScratchDevice is a simple MMIO device: Size bytes of registers at Base that
// read back what was written (little-endian); reads elsewhere return
// 0xffffffff truncated to the size (a bus with nothing behind it), writes
// elsewhere are ignored.
type ScratchDevice struct {
	Base uint64
	Regs []byte
}

// Read implements MMIODevice.
func (d *ScratchDevice) Read(pa uint64, size uint8) uint32 {
	if pa < d.Base || pa-d.Base+uint64(size) > uint64(len(d.Regs)) {
		return uint32(uint64(1)<<(8*uint(size)) - 1)
	}
	o := pa - d.Base
	var v uint32
	for i := uint64(0); i < uint64(size); i++ {
		v |= uint32(d.Regs[o+i]) << (8 * i)
	}
	return v
}

// Write implements MMIODevice.
func (d *ScratchDevice) Write(pa uint64, size uint8, v uint32) {
	if pa < d.Base || pa-d.Base+uint64(size) > uint64(len(d.Regs)) {
		return
	}
	o := pa - d.Base
	for i := uint64(0); i < uint64(size); i++ {
		d.Regs[o+i] = byte(v >> (8 * i))
	}
}
