package vmid

import (
	"fmt"
	"sync"
)

// tlbModel is the TLB as the allocator's correctness depends on it: for each
// CPU, which VM each VMID's cached entries belong to. A VM that runs with a
// VMID whose entries on that CPU belong to another VM would hit that VM's
// translations. It also tracks which VM each CPU runs, to check that two
// VMs never run with the same VMID at once.
type tlbModel struct {
	mu        sync.Mutex
	entries   []map[uint16]*VM // per CPU
	running   []*VM            // per CPU
	runVMID   []uint16         // per CPU
	flushAll  int
	flushVMID map[uint16]int
	seen      map[*VM]seenVMID
	err       error // first violation
}

type seenVMID struct {
	vmid     uint16
	flushAll int // flushAll when the VM last ran
}

func newTLBModel(ncpu int) *tlbModel {
	m := &tlbModel{
		entries:   make([]map[uint16]*VM, ncpu),
		running:   make([]*VM, ncpu),
		runVMID:   make([]uint16, ncpu),
		flushVMID: map[uint16]int{},
		seen:      map[*VM]seenVMID{},
	}
	for i := range m.entries {
		m.entries[i] = map[uint16]*VM{}
	}
	return m
}

// FlushAll and FlushVMID are called by the allocator with its lock held.
func (m *tlbModel) FlushAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flushAll++
	for i := range m.entries {
		clear(m.entries[i])
	}
}

func (m *tlbModel) FlushVMID(v uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flushVMID[v]++
	for i := range m.entries {
		delete(m.entries[i], v)
	}
}

func (m *tlbModel) fail(format string, args ...any) {
	if m.err == nil {
		m.err = fmt.Errorf(format, args...)
	}
}

// run records that cpu enters vm with VMID v and checks the invariants:
//   - VMID 0 is the host's;
//   - no other VM runs with v on another CPU, and a VM runs with one VMID;
//   - no entries of another VM are cached for v on this CPU (a reused VMID
//     was flushed);
//   - a VM's VMID changes only across a full flush (rollover).
func (m *tlbModel) run(cpu int, vm *VM, v uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v == 0 {
		m.fail("CPU %d: VM %p got the host's VMID 0", cpu, vm)
	}
	for c, other := range m.running {
		if c == cpu || other == nil {
			continue
		}
		if other != vm && m.runVMID[c] == v {
			m.fail("VMID %d running on CPU %d (VM %p) and CPU %d (VM %p)", v, c, other, cpu, vm)
		}
		if other == vm && m.runVMID[c] != v {
			m.fail("VM %p runs with VMID %d on CPU %d and %d on CPU %d", vm, m.runVMID[c], c, v, cpu)
		}
	}
	if owner, ok := m.entries[cpu][v]; ok && owner != vm {
		m.fail("CPU %d: VM %p runs with VMID %d whose TLB entries belong to VM %p (no flush since reuse)", cpu, vm, v, owner)
	}
	if s, ok := m.seen[vm]; ok && s.vmid != v && s.flushAll == m.flushAll {
		m.fail("VM %p: VMID changed %d -> %d without a full flush", vm, s.vmid, v)
	}
	m.seen[vm] = seenVMID{vmid: v, flushAll: m.flushAll}
	m.entries[cpu][v] = vm
	m.running[cpu], m.runVMID[cpu] = vm, v
}

// failed returns the first violation.
func (m *tlbModel) failed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// stop records that cpu no longer runs a VM.
func (m *tlbModel) stop(cpu int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running[cpu] = nil
}

// forget drops a destroyed VM from the VMID-change check.
func (m *tlbModel) forget(vm *VM) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seen, vm)
}

func (m *tlbModel) counts() (all int, byVMID map[uint16]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := map[uint16]int{}
	for k, v := range m.flushVMID {
		c[k] = v
	}
	return m.flushAll, c
}

// checkUnique checks that no two VMs of the current generation share a
// VMID. Called with no allocator operation in flight.
func checkUnique(a *Allocator, vms []*VM) error {
	owner := make([]*VM, a.mask+1)
	for _, vm := range vms {
		id := vm.id.Load()
		if !a.genMatch(id) {
			continue
		}
		if o := owner[id&a.mask]; o != nil {
			return fmt.Errorf("VMs %p and %p share id %#x", o, vm, id)
		}
		owner[id&a.mask] = vm
	}
	return nil
}
