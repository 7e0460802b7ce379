package randprog_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/randprog"
	"github.com/nestmmu/nestmmu/mips/refmodel"
)

// TestCoverage checks that generated programs reach every kind of outcome
// the equivalence test is meant to compare: each TLB exception at each
// vector (refill with EXL=0, refill with EXL=1, BEV), TLB modified, address
// errors, CpU, syscall, delay slots, MMIO, internal errors, user mode, ASID
// changes, commpage reads, and values read.
func TestCoverage(t *testing.T) {
	m, err := refmodel.New(4096, 4<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := randprog.New(4096, 4<<20, 1)
	seen := map[string]int{}
	for i := 0; i < 100000; {
		for _, op := range g.Next(m) {
			i++
			user := m.CP0(cp0.RegStatus, 0)&(cp0.StatusUM|cp0.StatusEXL|cp0.StatusERL) == cp0.StatusUM
			asid := m.CP0(cp0.RegEntryHi, 0) & 0xff
			r := m.Exec(op)
			if user {
				seen["user-mode op"]++
			}
			if m.CP0(cp0.RegEntryHi, 0)&0xff != asid {
				seen["asid change"]++
			}
			switch r.Outcome {
			case cp0.Exception:
				seen[r.Code.String()]++
				switch r.PC & 0xfff {
				case 0x000:
					seen["refill vector"]++
				case 0x180:
					if r.Code == cp0.ExcTLBL || r.Code == cp0.ExcTLBS {
						seen["tlb general vector"]++
					}
				case 0x200:
					seen["BEV refill vector"]++
				}
				if r.Cause&cp0.CauseBD != 0 {
					seen["BD"]++
				}
			case cp0.MMIO:
				seen["mmio"]++
			case cp0.Internal:
				seen["internal"]++
			case cp0.Done:
				if (op.Kind == cp0.OpLoad || op.Kind == cp0.OpKVMRead) && r.Value != 0 {
					seen["nonzero value read"]++
				}
				if op.Kind == cp0.OpStore {
					seen["store"]++
				}
			}
		}
	}
	for _, k := range []string{"TLBL", "TLBS", "Mod", "AdEL", "AdES", "CpU", "Sys", "refill vector", "tlb general vector", "BEV refill vector", "BD", "mmio", "internal", "nonzero value read", "store", "user-mode op", "asid change"} {
		if seen[k] < 10 {
			t.Errorf("%q seen %d times in 100000 operations", k, seen[k])
		}
	}
	t.Logf("%v", seen)
}

// TestAllowed checks the two exclusions.
func TestAllowed(t *testing.T) {
	m, _ := refmodel.New(4096, 1<<20, nil)
	exec := func(op cp0.Op) { m.Exec(op) }
	exec(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegStatus, Value: 0})
	exec(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegEntryHi, Value: 0x00400000 | 1})
	exec(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegEntryLo0, Value: cp0.EntryLoV})
	exec(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegIndex, Value: 3})
	wi := cp0.Op{Kind: cp0.OpTLBWI}
	if !randprog.Allowed(m, wi, 4096) {
		t.Error("first write refused")
	}
	exec(wi)
	exec(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegIndex, Value: 4})
	if randprog.Allowed(m, wi, 4096) {
		t.Error("duplicate entry allowed")
	}
	exec(cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegIndex, Value: 3})
	if !randprog.Allowed(m, wi, 4096) {
		t.Error("rewriting the same index refused")
	}
	if randprog.Allowed(m, cp0.Op{Kind: cp0.OpStore, VA: 0x7000 + cp0.RegOffset(cp0.RegEntryHi, 0), Size: 4}, 4096) {
		t.Error("kernel store to EntryHi in the commpage allowed")
	}
	if !randprog.Allowed(m, cp0.Op{Kind: cp0.OpStore, VA: 0x7000 + cp0.RegOffset(cp0.RegKScratch, 2), Size: 4}, 4096) {
		t.Error("kernel store to KScratch in the commpage refused")
	}
}
