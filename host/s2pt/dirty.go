package s2pt

import (
	"errors"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/mem"
)

// dirtyVisitor harvests and resets hardware dirty state (DBM, VTCR_EL2.HD).
type dirtyVisitor struct {
	vm     *VM
	report func(ipa mem.IPA, size uint64)
	n      int
}

func (v *dirtyVisitor) Visit(c *Ctx, at WalkFlags) error {
	d := c.Old
	if d&desc.ValidBit == 0 || d&desc.S2APWriteBit == 0 {
		return nil // invalid, read-only or writable-clean: nothing written since
	}
	if err := v.vm.checkLeaf(c); err != nil {
		return err
	}
	// Writable-dirty (DBM=1, S2AP[1]=1), or writable without tracking
	// (DBM=0): report it, make it writable-clean. A TLB may hold the
	// write permission: a restriction, invalidated before returning.
	prev, err := c.apply(func(cur uint64) uint64 { return cur&^desc.S2APWriteBit | desc.DBMBit }, 0)
	if err != nil {
		return err
	}
	if prev&desc.S2APWriteBit != 0 {
		v.n++
		if v.report != nil {
			v.report(c.Addr, c.Size())
		}
	}
	return nil
}

// ClearDirty is dirty-state tracking by hardware (FEAT_HAFDBS at stage 2,
// VTCR_EL2.HD=1): every writable leaf the range touches that may have
// been written since the last call (S2AP[1] set: writable-dirty, or
// writable with DBM=0, whose writes are not tracked) is reported to report
// (its first IPA and size; may be nil) and made writable-clean (DBM=1,
// S2AP[1]=0), so that its next write sets S2AP[1] in the walk instead of
// taking a permission fault. It returns how many leaves it reported. The
// write permission a TLB may hold is invalidated before it returns; it
// takes no memory. It is the alternative to write-protecting for dirty
// logging: no fault per first write, one walk of the range per harvest
// (BenchmarkDirtyTracking compares the two).
func (vm *VM) ClearDirty(ipa mem.IPA, size uint64, report func(ipa mem.IPA, size uint64)) (int, error) {
	if err := vm.lock(); err != nil {
		return 0, err
	}
	defer vm.unlock()
	if err := vm.checkArgs(ipa, size); err != nil {
		return 0, err
	}
	if !vm.layout.VTCR.HD() {
		return 0, errors.New("s2pt: ClearDirty needs hardware dirty-state updates (Config.HD)")
	}
	v := &vm.visitors.dirty
	v.report, v.n = report, 0
	err := vm.walk(ipa, ipa+mem.IPA(size), v, VisitLeaf)
	v.report = nil
	return v.n, vm.finish(err)
}
