package kvm

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/mem"
)

// BatchAccess is one access of a batch: a load or store, an LDR or STR
// of Size bytes (1, 2, 4 or 8) with X0 as the transfer register, a
// store's data being Val and a load's result written to Val
// (zero-extended); or, with Fetch, the fetch of the instruction at VA
// (the PC is set to VA; Size and Write are ignored), its word written to
// Val, after which the PC is VA+4 as for the next instruction.
type BatchAccess struct {
	VA    mem.VA
	Val   uint64
	Size  uint8
	Write bool
	Fetch bool
	// Hint, when set, is a word of the caller's own host memory that it
	// will read after the batch for this access (an integrity checker's
	// copy of the accessed word): the batch prefetches it into the host's
	// caches just before the access, so that its cache miss overlaps the
	// batch's work instead of coming after it. It changes nothing
	// modelled.
	Hint *uint64
}

// Hint prefetches a batch access's Hint (if any) into the host's
// caches: for RunBatch's hit loops.
func Hint(h *uint64) {
	if h != nil {
		mem.Prefetch(h)
	}
}

// hitGroup is how many accesses HitGroup translates before performing
// them.
const hitGroup = 8

// hitWord is an access HitGroup has translated: its word and PA.
type hitWord struct {
	p  *uint64
	pa mem.PA
}

// HitGroup runs the accesses at the start of b that complete on the PE's
// hit path in the memory's words, up to hitGroup of them, in two passes
// so that their host cache misses overlap instead of coming one after the
// other: it translates them (cpu.PE.WordHit, which counts each as the hit
// path does) and prefetches each word (and Hint) into the host's caches,
// then performs the loads and stores in program order (cpu.PE.LoadHit,
// StoreHit: the freed-frame check on each, a store seen by a later load
// of the same word), a load's value into its Val, the PC advanced by 4
// for each. It returns how many it ran; it stops before the first access
// that needs anything else (0 when that is b[0]), which the caller runs
// through ReadHit or WriteHit or the full path. The TLB hits of the first
// pass change no translation, so the accesses use the translations they
// would one at a time; the caller holds the CPU lock, so no TLBI comes
// between the passes.
func HitGroup(pe *cpu.PE, b []BatchAccess) int {
	var w [hitGroup]hitWord
	m := 0
	for ; m < len(b) && m < hitGroup; m++ {
		a := &b[m]
		if a.Fetch {
			break
		}
		p, pa := pe.WordHit(a.VA, int(a.Size), a.Write)
		if p == nil {
			break
		}
		Hint(a.Hint)
		mem.Prefetch(p)
		w[m] = hitWord{p, pa}
	}
	for i := range m {
		a := &b[i]
		if a.Write {
			pe.StoreHit(w[i].p, w[i].pa, int(a.Size), a.Val)
		} else {
			a.Val = pe.LoadHit(w[i].p, w[i].pa, int(a.Size))
		}
	}
	pe.PC += mem.VA(4 * m)
	return m
}

// batchReg is the transfer register of batch accesses.
const batchReg = 0

// batchInsn is the syndrome of a batch access: LDR/STR X0.
var batchInsn = cpu.Insn{Valid: true, Reg: batchReg, SixtyFour: true}

// RunBatch runs the accesses of b in order, as Run would one by one, and
// returns how many completed. It stops before completing b[n] when that
// access exits to the caller (ExitException: the guest took an exception
// at EL1 and the PE is at its vector, with ELR_EL1 at the access; or
// ExitMMIO, completed by CompleteMMIO, after which b[n] is complete and the
// caller goes on from b[n+1], a load's value being in X0), or on an error.
//
// The accesses run with the physical CPU's lock held from one to the next,
// up to batchHold of them, and it is released to handle an exception taken
// to EL2 (a stage-2 fault, MMIO), as Run does for each: a TLB invalidation
// waits for the accesses in flight as for a single one (it completes after
// them, which the architecture allows: they were issued before it). TLB
// hits take the PE's hit path (ReadHit, WriteHit); anything else its full
// path (Read, Write); an instruction fetch takes FetchHit, else Fetch.
func (v *VCPU) RunBatch(b []BatchAccess) (n int, exit Exit, err error) {
	if v.cpu == nil {
		return 0, Exit{}, ErrNotLoaded
	}
	if v.hasPending {
		return 0, Exit{}, ErrPendingMMIO
	}
	pe := v.pe
	reentries := 0
	for n < len(b) {
		c := v.cpu
		c.mu.Lock()
		var e cpu.Exception
		for held := 0; n < len(b) && held < batchHold; held++ {
			if m := HitGroup(pe, b[n:min(len(b), n+batchHold-held)]); m > 0 {
				n, held, reentries = n+m, held+m-1, 0
				continue
			}
			a := &b[n]
			Hint(a.Hint)
			if a.Fetch {
				pe.PC = a.VA
				w, ex, done := pe.FetchHit(a.VA)
				if !done {
					if w, e = pe.Fetch(a.VA); e.Taken() {
						break
					}
				} else if ex != nil {
					e = *ex
					break
				}
				a.Val = uint64(w)
				pe.PC += 4
				n++
				reentries = 0
				continue
			}
			size := int(a.Size)
			if size != 1 && size != 2 && size != 4 && size != 8 {
				c.mu.Unlock()
				return n, Exit{}, fmt.Errorf("kvm: batch access %d: size %d is not 1, 2, 4 or 8", n, size)
			}
			if a.Write {
				ex, done := pe.WriteHit(a.VA, size, a.Val)
				if !done {
					v.ctx.X[batchReg] = a.Val // the data register, should the store exit as MMIO
					if e = pe.Write(a.VA, size, a.Val, batchInsn); e.Taken() {
						break
					}
				} else if ex != nil {
					e = *ex
					break
				}
			} else {
				val, ex, done := pe.ReadHit(a.VA, size)
				if !done {
					if val, e = pe.Read(a.VA, size, batchInsn); e.Taken() {
						break
					}
				} else if ex != nil {
					e = *ex
					break
				}
				a.Val = loadValue(val, size, false, true)
			}
			pe.PC += 4
			n++
			reentries = 0
		}
		c.mu.Unlock()
		if !e.Taken() {
			continue
		}
		if reentries++; reentries == maxReentries {
			return n, Exit{}, fmt.Errorf("%w: %d exits to EL2 on the access to %#x", ErrNoProgress, reentries, b[n].VA)
		}
		var retry bool
		exit, retry, err = v.exception(e)
		if err != nil || !retry {
			return n, exit, err
		}
	}
	return n, Exit{}, nil
}

// batchHold bounds the accesses run under one hold of the CPU lock.
const batchHold = 256
