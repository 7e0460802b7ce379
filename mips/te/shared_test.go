package te_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/refmodel"
	"github.com/nestmmu/nestmmu/mips/te"
)

// The engine and the reference model make some choices the same way, so
// the equivalence test cannot see a shared misreading of them. The tests
// in this file pin each such choice with expectations written by hand from
// the MIPS32 architecture (Vol. III, the PRA) or from seed 001 and the
// kernel it changed, and run every case on every machine: the reference
// model, the engine with the series' semantics, with DirtyLog, and the
// pre-series scheme.

type namedMachine struct {
	name string
	m    cp0.Machine
}

func allMachines(t *testing.T, pageSize, ramSize uint32) []namedMachine {
	t.Helper()
	ref, err := refmodel.New(pageSize, ramSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms := []namedMachine{{"refmodel", ref}}
	for _, c := range []struct {
		name string
		cfg  te.Config
	}{{"series", te.Config{}}, {"dirtylog", te.Config{DirtyLog: true}}, {"pre-series", te.Config{Legacy: true}}} {
		cfg := c.cfg
		cfg.PageSize, cfg.RAMSize, cfg.HostTLBEntries, cfg.Seed = pageSize, ramSize, 16, 3
		e, err := te.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, namedMachine{c.name, e})
	}
	return ms
}

// Program pieces. Every machine starts in kernel mode with Status = 0
// (BEV=0, EXL=0), so the vectors are EBase (0x40000000) + 0 for a refill
// and + 0x180 for the rest.
const kernelPC, userPC = 0x40001000, 0x00400000

func mtc0(reg, sel uint8, v uint32) cp0.Op {
	return cp0.Op{Kind: cp0.OpMTC0, Reg: reg, Sel: sel, Value: v, PC: kernelPC}
}

// tlbwi writes a guest TLB entry at index i.
func tlbwi(i int, mask, hi, lo0, lo1 uint32) []cp0.Op {
	return []cp0.Op{
		mtc0(cp0.RegPageMask, 0, mask), mtc0(cp0.RegEntryHi, 0, hi),
		mtc0(cp0.RegEntryLo0, 0, lo0), mtc0(cp0.RegEntryLo1, 0, lo1),
		mtc0(cp0.RegIndex, 0, uint32(i)), {Kind: cp0.OpTLBWI, PC: kernelPC},
	}
}

// poke stores v at guest physical address gpa through guest KSeg0.
func poke(gpa, v uint32) cp0.Op {
	return cp0.Op{Kind: cp0.OpStore, VA: cp0.GuestKSeg0 + gpa, Size: 4, Value: v, PC: kernelPC}
}

// toUser enters guest user mode (ERET with Status.UM).
func toUser() []cp0.Op {
	return []cp0.Op{mtc0(cp0.RegStatus, 0, cp0.StatusUM|cp0.StatusEXL), mtc0(cp0.RegEPC, 0, userPC), {Kind: cp0.OpERET, PC: kernelPC}}
}

func ld(size uint8, va uint32) cp0.Op {
	return cp0.Op{Kind: cp0.OpLoad, VA: va, Size: size, PC: kernelPC}
}

func st(size uint8, va, v uint32) cp0.Op {
	return cp0.Op{Kind: cp0.OpStore, VA: va, Size: size, Value: v, PC: kernelPC}
}

func user(op cp0.Op) cp0.Op { op.PC = userPC; return op }

// exc is the result of an exception taken at pc with EXL=0: EPC = pc,
// Cause.ExcCode = code, the vector at EBase + 0 (refill) or + 0x180.
// TLB exceptions also load EntryHi.VPN2 from the address (ASID 0 here);
// address errors leave EntryHi as set up (0).
func exc(code cp0.ExcCode, refill bool, va, pc uint32) cp0.Result {
	r := cp0.Result{Outcome: cp0.Exception, Code: code, PC: 0x40000180, BadVAddr: va, EPC: pc, Cause: uint32(code) << 2}
	if refill {
		r.PC = 0x40000000
	}
	if code == cp0.ExcTLBL || code == cp0.ExcTLBS || code == cp0.ExcMod {
		r.EntryHi = va & 0xffffe000
	}
	return r
}

var (
	internal = cp0.Result{Outcome: cp0.Internal}
	mmio     = cp0.Result{Outcome: cp0.MMIO}
)

func value(v uint32) cp0.Result { return cp0.Result{Value: v} }

type sharedCase struct {
	name        string
	page, ram   uint32
	setup       []cp0.Op
	op          cp0.Op
	want        cp0.Result
	ignoreValue bool // an MMIO read: the device's value is not the point
}

func runShared(t *testing.T, cases []sharedCase) {
	t.Helper()
	for _, c := range cases {
		if c.page == 0 {
			c.page = 4096
		}
		if c.ram == 0 {
			c.ram = 1 << 20
		}
		for _, nm := range allMachines(t, c.page, c.ram) {
			t.Run(fmt.Sprintf("%s/%s", c.name, nm.name), func(t *testing.T) {
				setup := append([]cp0.Op{mtc0(cp0.RegStatus, 0, 0)}, c.setup...)
				if c.op.PC < cp0.GuestKSeg0 {
					setup = append(setup, toUser()...)
				}
				for i, op := range setup {
					if r := nm.m.Exec(op); r.Outcome != cp0.Done {
						t.Fatalf("setup op %d (%v): %v", i, op, r)
					}
				}
				got := nm.m.Exec(c.op)
				if c.ignoreValue {
					got.Value = 0
				}
				if got != c.want {
					t.Errorf("%v:\n got %v\nwant %v", c.op, got, c.want)
				}
			})
		}
	}
}

// TestOutsideRAM: a guest physical address that is not RAM, reached
// through guest KSeg0 or the guest TLB, ends the run with an internal
// error, as in the series (kvm_mips_handle_kseg0_tlb_fault and
// kvm_mips_handle_mapped_seg_tlb_fault return -1 for a frame beyond
// guest_pmap_npages; kvm_trap_emul_handle_tlb_miss then exits with
// KVM_EXIT_INTERNAL_ERROR). Only host KSeg0/1 addresses are MMIO.
func TestOutsideRAM(t *testing.T) {
	const v, d = cp0.EntryLoV, cp0.EntryLoD
	ramEnd := uint32(1 << 20)
	pfn := func(gpa uint32) uint32 { return gpa >> 12 << 6 }
	// useg 0x00400000: even page at the end of RAM, odd page inside it.
	beyond := tlbwi(1, 0, 0x00400000, pfn(ramEnd)|v|d, pfn(0x3000)|v|d)
	beyondRO := tlbwi(1, 0, 0x00400000, pfn(ramEnd)|v, pfn(0x3000)|v)
	invalid := tlbwi(1, 0, 0x00400000, pfn(ramEnd)|d, pfn(0x3000)|v|d)
	mapped := append(append([]cp0.Op{poke(0x3010, 0x55)}, beyond...), mtc0(cp0.RegEntryHi, 0, 0))
	runShared(t, []sharedCase{
		{name: "kseg0-load", op: ld(4, 0x40000000+ramEnd), want: internal},
		{name: "kseg0-store", op: st(4, 0x40000000+ramEnd+0x40, 1), want: internal},
		{name: "kseg0-fetch", op: cp0.Op{Kind: cp0.OpFetch, VA: 0x40000000 + ramEnd, PC: kernelPC}, want: internal},
		{name: "kseg0-kvmread", op: cp0.Op{Kind: cp0.OpKVMRead, VA: 0x40000000 + ramEnd, PC: kernelPC}, want: internal},
		{name: "kseg0-cache", op: cp0.Op{Kind: cp0.OpCache, VA: 0x40000000 + ramEnd, PC: kernelPC}, want: internal},
		// The series maps a KSeg0 page with its buddy and refuses the pair
		// unless both are RAM ("(gfn | 1) >= guest_pmap_npages"): with 257
		// pages the last one cannot be reached, page 255 can.
		{name: "kseg0-buddy-beyond", ram: ramEnd + 4096, op: ld(4, 0x40000000+ramEnd), want: internal},
		{name: "kseg0-pair-inside", ram: ramEnd + 4096, setup: []cp0.Op{poke(ramEnd-4096, 9)}, op: ld(4, 0x40000000+ramEnd-4096), want: value(9)},
		{name: "mapped-load", setup: mapped, op: ld(4, 0x00400000), want: internal},
		{name: "mapped-store", setup: mapped, op: st(4, 0x00400000, 1), want: internal},
		{name: "mapped-kvmread", setup: mapped, op: cp0.Op{Kind: cp0.OpKVMRead, VA: 0x00400000, PC: kernelPC}, want: internal},
		{name: "mapped-user-load", setup: mapped, op: user(ld(4, 0x00400000)), want: internal},
		// The fill fails before the host could raise TLB Modified, so a
		// store to a guest D=0 page beyond RAM is not the guest's Mod.
		{name: "mapped-store-clean", setup: append(beyondRO, mtc0(cp0.RegEntryHi, 0, 0)), op: st(4, 0x00400000, 1), want: internal},
		// The guest's own exceptions come first (MIPS32 TLB lookup: no
		// match is a refill, V=0 is TLB Invalid), whatever the PFN.
		{name: "mapped-invalid-half", setup: append(invalid, mtc0(cp0.RegEntryHi, 0, 0)), op: ld(4, 0x00400000), want: exc(cp0.ExcTLBL, false, 0x00400000, kernelPC)},
		{name: "mapped-no-entry", setup: []cp0.Op{mtc0(cp0.RegEntryHi, 0, 0)}, op: st(4, 0x00800000, 1), want: exc(cp0.ExcTLBS, true, 0x00800000, kernelPC)},
		// The series checks only the page accessed: the buddy in RAM works.
		{name: "mapped-buddy-inside", setup: mapped, op: ld(4, 0x00401010), want: value(0x55)},
		{name: "host-kseg1-load", op: ld(4, 0xbf000000), want: mmio, ignoreValue: true},
		{name: "host-kseg1-store", op: st(4, 0xbf000000, 1), want: mmio},
		{name: "host-kseg1-user", op: user(ld(4, 0xbf000000)), want: exc(cp0.ExcAdEL, false, 0xbf000000, userPC)},
	})
}

// TestGuestPageSize: a guest TLB entry translates with its own PageMask
// (MIPS32 Vol. III, TLB lookup: the even/odd page is chosen by the VA bit
// above the page offset, 12 + the mask width, and the offset bits come from
// the VA), whatever the host page size. A guest page smaller than the host
// page cannot be honoured by trap-and-emulate, whose seed constraint is
// guest page size = host page size: internal error.
func TestGuestPageSize(t *testing.T) {
	const v, d = cp0.EntryLoV, cp0.EntryLoD
	// Words at the addresses a correct translation reaches, and decoys at
	// the addresses a translation ignoring the mask or the offset would.
	mem := []cp0.Op{
		poke(0x22004, 1), poke(0x41008, 2), poke(0x20004, 0xd1), poke(0x21008, 0xd2), poke(0x40004, 0xd3),
		poke(0x2c008, 3), poke(0x28008, 0xd4), poke(0x30004, 4),
	}
	mask16K := append(append(mem, tlbwi(2, 0x6000, 0x00400000, 0x20000>>12<<6|v|d, 0x40000>>12<<6|v|d)...), mtc0(cp0.RegEntryHi, 0, 0))
	mask4K := append(append(mem, tlbwi(2, 0, 0x00400000, 0x28000>>12<<6|v|d, 0x2c000>>12<<6|v|d)...), mtc0(cp0.RegEntryHi, 0, 0))
	// 64K guest pages: VA bit 16 picks the half.
	mask64K := append(append(mem, tlbwi(2, 0x1e000, 0x00400000, 0x20000>>12<<6|v|d, 0x30000>>12<<6|v|d)...), mtc0(cp0.RegEntryHi, 0, 0))
	runShared(t, []sharedCase{
		{name: "4K-host/16K-guest-even", setup: mask16K, op: ld(4, 0x00402004), want: value(1)},
		{name: "4K-host/16K-guest-odd", setup: mask16K, op: ld(4, 0x00405008), want: value(2)},
		{name: "4K-host/4K-guest-odd", setup: mask4K, op: ld(4, 0x00401008), want: value(3)},
		{name: "4K-host/64K-guest-odd", setup: mask64K, op: ld(4, 0x00410004), want: value(4)},
		{name: "16K-host/16K-guest-even", page: 16384, setup: mask16K, op: ld(4, 0x00402004), want: value(1)},
		{name: "16K-host/16K-guest-odd", page: 16384, setup: mask16K, op: ld(4, 0x00405008), want: value(2)},
		{name: "16K-host/4K-guest", page: 16384, setup: mask4K, op: ld(4, 0x00401008), want: internal},
		{name: "64K-host/16K-guest", page: 65536, setup: mask16K, op: ld(4, 0x00402004), want: internal},
	})
}

// TestUnalignedAccess: a load or store not aligned to its size, and an
// instruction fetch not word aligned, take an Address Error (AdEL for
// loads and fetches, AdES for stores) before any translation (MIPS32 LW/SW
// pseudocode: "if vAddr[1..0] != 0 then SignalException(AddressError)"
// precedes AddressTranslation), in kernel and user mode alike. BadVAddr is
// the address; EntryHi is unchanged.
func TestUnalignedAccess(t *testing.T) {
	setup := []cp0.Op{mtc0(cp0.RegEntryHi, 0, 0)}
	runShared(t, []sharedCase{
		{name: "kseg0-lw", setup: setup, op: ld(4, 0x40000002), want: exc(cp0.ExcAdEL, false, 0x40000002, kernelPC)},
		{name: "kseg0-lh", setup: setup, op: ld(2, 0x40000001), want: exc(cp0.ExcAdEL, false, 0x40000001, kernelPC)},
		{name: "kseg0-lb", setup: append(setup, poke(0, 0x44332211)), op: ld(1, 0x40000003), want: value(0x44)},
		{name: "unmapped-sh", setup: setup, op: st(2, 0x00400001, 0), want: exc(cp0.ExcAdES, false, 0x00400001, kernelPC)},
		{name: "unmapped-sw", setup: setup, op: st(4, 0x00400006, 0), want: exc(cp0.ExcAdES, false, 0x00400006, kernelPC)},
		{name: "host-kseg1-sw", setup: setup, op: st(4, 0xbf000002, 0), want: exc(cp0.ExcAdES, false, 0xbf000002, kernelPC)},
		{name: "commpage-lw", setup: setup, op: ld(4, 0x7001), want: exc(cp0.ExcAdEL, false, 0x7001, kernelPC)},
		{name: "fetch", setup: setup, op: cp0.Op{Kind: cp0.OpFetch, VA: 0x40000002, PC: kernelPC}, want: exc(cp0.ExcAdEL, false, 0x40000002, kernelPC)},
		{name: "kvmread", setup: setup, op: cp0.Op{Kind: cp0.OpKVMRead, VA: 0x40000002, PC: kernelPC}, want: exc(cp0.ExcAdEL, false, 0x40000002, kernelPC)},
		{name: "user-lw", setup: setup, op: user(ld(4, 0x00400002)), want: exc(cp0.ExcAdEL, false, 0x00400002, userPC)},
		{name: "user-sh", setup: setup, op: user(st(2, 0x00400003, 0)), want: exc(cp0.ExcAdES, false, 0x00400003, userPC)},
	})
}

// TestCommpageShadowsGuestTLB: the commpage occupies guest VA
// 0x8000 - PAGE_SIZE (0 for pages over 32 KiB) in guest kernel mode only
// (seed 001 and the reference note: "mapped ... while the guest is in
// kernel mode"). There it shadows a guest TLB mapping of the same page; its
// buddy page, and the same page in user mode, translate through the guest
// TLB as the architecture says.
func TestCommpageShadowsGuestTLB(t *testing.T) {
	const v, d = cp0.EntryLoV, cp0.EntryLoD
	scratch := cp0.RegOffset(cp0.RegKScratch, 2)
	for _, page := range []uint32{4096, 16384, 65536} {
		comm := cp0.CommpageAddr(page)
		pair := comm &^ (2*page - 1)
		buddy := pair + page
		if buddy == comm {
			buddy = pair
		}
		// Guest TLB (global, so user mode matches too): the pair holding the
		// commpage -> GPA 0x100000 (even) and 0x100000 + page (odd).
		evenGPA, oddGPA := uint32(0x100000), 0x100000+page
		gpaOf := func(va uint32) uint32 {
			if va&page == 0 {
				return evenGPA
			}
			return oddGPA
		}
		setup := []cp0.Op{
			poke(gpaOf(comm)+scratch, 0x6d6d), poke(gpaOf(buddy)+scratch, 0xb0b0),
			mtc0(cp0.RegKScratch, 2, 0xfeed),
		}
		mask := (2*page - 1) &^ 0x1fff
		setup = append(setup, tlbwi(5, mask, pair, evenGPA>>12<<6|v|d|cp0.EntryLoG, oddGPA>>12<<6|v|d|cp0.EntryLoG)...)
		setup = append(setup, mtc0(cp0.RegEntryHi, 0, 0))
		name := fmt.Sprintf("%dK", page/1024)
		runShared(t, []sharedCase{
			{name: name + "/kernel-commpage", page: page, ram: 4 << 20, setup: setup, op: ld(4, comm+scratch), want: value(0xfeed)},
			{name: name + "/kernel-buddy", page: page, ram: 4 << 20, setup: setup, op: ld(4, buddy+scratch), want: value(0xb0b0)},
			{name: name + "/user-commpage", page: page, ram: 4 << 20, setup: setup, op: user(ld(4, comm+scratch)), want: value(0x6d6d)},
			{name: name + "/user-buddy", page: page, ram: 4 << 20, setup: setup, op: user(ld(4, buddy+scratch)), want: value(0xb0b0)},
		})
	}
}

// TestTLBWRKeepsWiredEntries: TLBWR writes the entry Random selects, and
// Random stays between Wired and 63, so entries below Wired are never
// replaced by TLBWR; writing Wired sets Random to its upper bound (MIPS32
// Vol. III, Wired and Random registers, TLBWR).
func TestTLBWRKeepsWiredEntries(t *testing.T) {
	for _, wired := range []uint32{0, 1, 5, 63} {
		for _, nm := range allMachines(t, 4096, 1<<20) {
			t.Run(fmt.Sprintf("wired-%d/%s", wired, nm.name), func(t *testing.T) {
				m := nm.m
				exec := func(op cp0.Op) cp0.Result {
					r := m.Exec(op)
					if r.Outcome != cp0.Done {
						t.Fatalf("%v: %v", op, r)
					}
					return r
				}
				exec(mtc0(cp0.RegStatus, 0, 0))
				for i := 0; i < int(wired); i++ {
					for _, op := range tlbwi(i, 0, 0x10000000+uint32(i)<<13, cp0.EntryLoV, cp0.EntryLoV) {
						exec(op)
					}
				}
				exec(mtc0(cp0.RegWired, 0, wired))
				if r := m.CP0(cp0.RegRandom, 0); r != 63 {
					t.Fatalf("Random = %d after writing Wired, want 63", r)
				}
				for k := uint32(0); k < 300; k++ {
					idx := m.CP0(cp0.RegRandom, 0)
					if idx < wired || idx > 63 {
						t.Fatalf("Random = %d with Wired = %d", idx, wired)
					}
					hi := 0x20000000 + k<<13
					exec(mtc0(cp0.RegEntryHi, 0, hi))
					exec(cp0.Op{Kind: cp0.OpTLBWR, PC: kernelPC})
					if e := m.TLBEntry(int(idx)); e.Hi != hi {
						t.Fatalf("TLBWR %d: entry %d holds %#x, want %#x", k, idx, e.Hi, hi)
					}
				}
				for i := 0; i < int(wired); i++ {
					if e := m.TLBEntry(i); e.Hi != 0x10000000+uint32(i)<<13 {
						t.Errorf("wired entry %d overwritten: %+v", i, e)
					}
				}
			})
		}
	}
}
