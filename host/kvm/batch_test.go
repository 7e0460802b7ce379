package kvm

import (
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

// batchEnv is a VM with 8 MiB of memory at 0x4000_0000 and the guest's
// stage 1 on (guestMMUOn), one vCPU on CPU 0.
type batchEnv struct {
	h   *Host
	vm  *VM
	v   *VCPU
	hva hostmm.HVA
}

const batchBase, batchSize = 0x4000_0000, 8 * mib

func newBatchEnv(t testing.TB) *batchEnv {
	h := newHost(t, Config{MemBytes: 64 * mib})
	vm := newVM(t, h, 40)
	hva := addMem(t, vm, 0, batchBase, batchSize, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	t.Cleanup(func() { destroy(t, vm, v) })
	guestMMUOn(t, vm, v)
	return &batchEnv{h: h, vm: vm, v: v, hva: hva}
}

// randomAccesses: loads and stores of every size in the slot (some
// unaligned, some crossing a page), to the MMIO hole at 0x0900_0000, and
// beyond the guest's stage-1 map (a stage-1 fault taken to EL1).
func randomAccesses(rng *rand.Rand, n int) []BatchAccess {
	b := make([]BatchAccess, n)
	for i := range b {
		a := &b[i]
		a.Size = uint8(1 << rng.IntN(4))
		a.Write = rng.IntN(2) == 0
		a.Val = rng.Uint64()
		if rng.IntN(2) == 0 {
			a.Hint = new(uint64) // a caller's word: changes nothing modelled
		}
		switch x := rng.IntN(100); {
		case x < 2:
			a.VA = 0x0900_0000 + mem.VA(rng.IntN(16))*8
		case x < 4:
			a.VA = 0x1_2000_0000 // beyond the 4 GiB stage 1 maps
		default:
			a.VA = batchBase + mem.VA(rng.IntN(64))*pg*16 + mem.VA(rng.IntN(4096))&^mem.VA(a.Size-1)
			if rng.IntN(20) == 0 {
				a.VA |= 1
			}
		}
		if x := rng.IntN(100); x < 10 && a.VA >= batchBase {
			// An instruction fetch: of guest memory, mostly aligned, or
			// beyond stage 1.
			a.Fetch = true
			if x < 9 {
				a.VA &^= 3
			}
		}
	}
	return b
}

// TestRunBatchSameAsRun runs the same accesses on two identical machines,
// one access at a time through Run, and in batches through RunBatch, with
// the host swapping pages out at the same points: every value loaded,
// every exit, the PE's and the VM's counters and guest memory must agree.
func TestRunBatchSameAsRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 5000
	}
	batchSameAsRun(t, randomAccesses(rng, n))
}

// TestRunBatchSameAsRunDense is TestRunBatchSameAsRun with the accesses
// on 8 words of 2 pages (a store then a load of the same word within
// HitGroup's group, partial stores into a word a later load reads whole)
// and, now and then, a TLB miss (a third page), an MMIO access or a
// stage-1 fault in the middle of a run of hits.
func TestRunBatchSameAsRunDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	acc := randomAccesses(rng, 5000)
	for i := range acc {
		a := &acc[i]
		if a.VA < batchBase {
			continue // MMIO, stage-1 fault
		}
		a.VA = batchBase + mem.VA(rng.IntN(2))*pg + mem.VA(rng.IntN(4))*8 + mem.VA(rng.IntN(8))&^mem.VA(a.Size-1)
		if a.Fetch {
			a.VA &^= 3
		}
		if rng.IntN(50) == 0 {
			a.VA += 2 * pg * mem.VA(1+rng.IntN(200)) // another page: a TLB miss
		}
	}
	batchSameAsRun(t, acc)
}

// batchSameAsRun is TestRunBatchSameAsRun's check of the accesses acc.
func batchSameAsRun(t *testing.T, acc []BatchAccess) {
	ref, bat := newBatchEnv(t), newBatchEnv(t)
	n := len(acc)
	want := make([]uint64, n)
	var wantExits, gotExits []ExitReason
	var wantELR, gotELR []mem.VA
	// handle resumes after an exit: the guest skips the faulting access.
	handle := func(e *batchEnv, ex Exit) {
		elr := &gotELR
		if e == ref {
			elr = &wantELR
		}
		*elr = append(*elr, e.v.PE().ELR[1]) // where the guest resumes
		switch ex.Reason {
		case ExitMMIO:
			if err := e.v.CompleteMMIO([2]uint64{0xabcd, 0}); err != nil {
				t.Fatal(err)
			}
		case ExitException:
			if x, err := e.v.ERET(); err != nil || x.Reason != ExitNone {
				t.Fatal(x, err)
			}
			e.v.PE().PC += 4
		}
	}
	swap := func(e *batchEnv, i int) {
		if i%500 == 499 {
			_ = e.vm.AddressSpace().SwapOut(e.hva + hostmm.HVA(uint64(i/500)%(batchSize/pg/16)*16*pg))
		}
	}
	for i, a := range acc {
		if a.Fetch {
			ref.v.PE().PC = a.VA
			w, ex, err := ref.v.Fetch()
			if err != nil {
				t.Fatalf("fetch %d: %v", i, err)
			}
			if want[i] = uint64(w); ex.Reason != ExitNone {
				wantExits = append(wantExits, ex.Reason)
				handle(ref, ex)
			} else {
				ref.v.PE().PC += 4
			}
			swap(ref, i)
			continue
		}
		x := Access{VA: a.VA, Size: int(a.Size), Write: a.Write, Rt: batchReg}
		ref.v.Ctx().X[batchReg] = a.Val
		ex, err := ref.v.Run(x)
		if err != nil {
			t.Fatalf("access %d: %v", i, err)
		}
		want[i] = ref.v.Ctx().X[batchReg]
		if ex.Reason != ExitNone {
			wantExits = append(wantExits, ex.Reason)
			handle(ref, ex)
			want[i] = ref.v.Ctx().X[batchReg] // the MMIO load's value
			if ex.Reason == ExitException {
				want[i] = 0 // no value
			}
		}
		swap(ref, i)
	}
	got := make([]uint64, n)
	for i := 0; i < n; {
		end := min(n, i+1+i%300) // batches of varying length, ending at swap points
		if s := i/500*500 + 500; end > s {
			end = s
		}
		b := acc[i:end]
		k, ex, err := bat.v.RunBatch(b)
		if err != nil {
			t.Fatalf("batch at %d: %v", i, err)
		}
		for j := 0; j < k; j++ {
			got[i+j] = b[j].Val
			if b[j].Write {
				got[i+j] = acc[i+j].Val
			}
		}
		i += k
		if ex.Reason != ExitNone {
			gotExits = append(gotExits, ex.Reason)
			handle(bat, ex)
			got[i] = bat.v.Ctx().X[batchReg]
			if acc[i].Write {
				got[i] = acc[i].Val
			}
			if ex.Reason == ExitException {
				got[i] = 0
			}
			i++
		}
		if i%500 == 0 {
			swap(bat, i-1)
		}
	}
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("access %d (%+v): Run gave %#x, RunBatch %#x", i, acc[i], want[i], got[i])
		}
	}
	if len(wantExits) != len(gotExits) || len(wantExits) == 0 {
		t.Fatalf("exits: Run %d, RunBatch %d", len(wantExits), len(gotExits))
	}
	for i := range wantExits {
		if wantExits[i] != gotExits[i] {
			t.Fatalf("exit %d: %v vs %v", i, wantExits[i], gotExits[i])
		}
	}
	for i := range wantELR {
		if wantELR[i] != gotELR[i] {
			t.Fatalf("exit %d: ELR_EL1 %#x vs %#x", i, wantELR[i], gotELR[i])
		}
	}
	if a, b := ref.v.PE().Stats, bat.v.PE().Stats; a != b {
		t.Errorf("PE counters: Run %+v, RunBatch %+v", a, b)
	}
	if a, b := ref.v.PE().TLB.Stats, bat.v.PE().TLB.Stats; a != b {
		t.Errorf("TLB counters: Run %+v, RunBatch %+v", a, b)
	}
	if a, b := ref.vm.Stats(), bat.vm.Stats(); a != b {
		t.Errorf("VM counters: Run %+v, RunBatch %+v", a, b)
	}
	for off := uint64(0); off < batchSize; off += 8 {
		a, _ := ref.vm.AddressSpace().Read(ref.hva+hostmm.HVA(off), 8)
		b, _ := bat.vm.AddressSpace().Read(bat.hva+hostmm.HVA(off), 8)
		if a != b {
			t.Fatalf("guest memory at +%#x: %#x vs %#x", off, a, b)
		}
	}
}

// TestGuestExceptionInstructions: the guest enters EL0 through SPSR_EL1,
// ELR_EL1 and ERET; an SVC and a virtual IRQ from EL0 come back to EL1 at
// the vectors for a lower EL (0x400, 0x480), the SVC with ESR_EL1 EC 0x15
// and its immediate and ELR_EL1 after the SVC, the IRQ with ESR_EL1
// unchanged and ELR_EL1 at the interrupted instruction; at EL1 with
// PSTATE.I set (as exception entry leaves it) the IRQ is not taken, and an
// SVC goes to the current-EL vector (0x200).
func TestGuestExceptionInstructions(t *testing.T) {
	e := newBatchEnv(t)
	v := e.v
	pe := v.PE()
	msr := func(r cpu.SysReg, val uint64) {
		v.Ctx().X[2] = val
		if x, err := v.MSR(r, 2); err != nil || x.Reason != ExitNone {
			t.Fatalf("MSR %v: %v %v", r, x, err)
		}
	}
	msr(cpu.VBAR_EL1, 0x8000)
	msr(cpu.ELR_EL1, 0x40_0000)
	msr(cpu.SPSR_EL1, 0) // EL0t, nothing masked
	if x, err := v.ERET(); err != nil || x.Reason != ExitNone {
		t.Fatal(x, err)
	}
	if pe.EL != 0 || pe.PC != 0x40_0000 {
		t.Fatalf("after ERET: EL%d PC %#x", pe.EL, pe.PC)
	}
	ex, err := v.SVC(0x42)
	if err != nil || ex.Reason != ExitException || ex.Exception.Kind != cpu.SupervisorCall {
		t.Fatalf("SVC: %v %v", ex, err)
	}
	if esr := pe.ESR[1]; esr.EC() != 0x15 || esr.ISS() != 0x42 || !esr.IL() {
		t.Errorf("ESR_EL1 %#x, want EC 0x15 IL ISS 0x42", uint64(esr))
	}
	if pe.EL != 1 || pe.PC != 0x8400 || pe.ELR[1] != 0x40_0004 || pe.SPSR[1]&0xf != 0 {
		t.Errorf("after SVC: EL%d PC %#x ELR %#x SPSR %#x, want EL1 0x8400 0x400004 EL0t", pe.EL, pe.PC, pe.ELR[1], pe.SPSR[1])
	}
	if x, err := v.ERET(); err != nil || x.Reason != ExitNone || pe.EL != 0 || pe.PC != 0x40_0004 {
		t.Fatalf("ERET: %v %v, EL%d PC %#x", x, err, pe.EL, pe.PC)
	}
	esr := pe.ESR[1]
	ex, err = v.VirtualIRQ()
	if err != nil || ex.Exception.Kind != cpu.IRQ {
		t.Fatalf("IRQ: %v %v", ex, err)
	}
	if pe.ESR[1] != esr || pe.PC != 0x8480 || pe.ELR[1] != 0x40_0004 {
		t.Errorf("after IRQ from EL0: ESR %#x (was %#x) PC %#x ELR %#x", uint64(pe.ESR[1]), uint64(esr), pe.PC, pe.ELR[1])
	}
	// At EL1 now, interrupts masked by the exception entry.
	if ex, err := v.VirtualIRQ(); err != nil || ex.Reason != ExitNone {
		t.Errorf("IRQ at EL1 with PSTATE.I set: %v %v", ex, err)
	}
	if _, err := v.SVC(1); err != nil || pe.PC != 0x8200 {
		t.Errorf("SVC from EL1: PC %#x (%v), want 0x8200", pe.PC, err)
	}
}

func TestRunBatchAllocFree(t *testing.T) {
	e := newBatchEnv(t)
	b := []BatchAccess{{VA: batchBase, Size: 8, Write: true, Val: 1}, {VA: batchBase, Size: 8}, {VA: batchBase + 8, Size: 4}}
	if _, _, err := e.v.RunBatch(b); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if n, _, err := e.v.RunBatch(b); n != len(b) || err != nil {
			t.Fatal(n, err)
		}
	}); n != 0 {
		t.Errorf("RunBatch of TLB hits allocates %v times", n)
	}
}

// BenchmarkRunBatch: BenchmarkTLBHitAccess's load, 256 to a batch.
func BenchmarkRunBatch(b *testing.B) {
	e := newBatchEnv(b)
	batch := make([]BatchAccess, 256)
	for i := range batch {
		batch[i] = BatchAccess{VA: batchBase + mem.VA(i%64)*8, Size: 8}
	}
	if _, _, err := e.v.RunBatch(batch); err != nil {
		b.Fatal(err)
	}
	hits := e.v.PE().Stats.TLBHits
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		if _, _, err := e.v.RunBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if e.v.PE().Stats.TLBHits == hits {
		b.Fatal("no TLB hits")
	}
}
