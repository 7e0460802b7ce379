package kvm

import (
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/mem"
)

// BatchAccess is one load or store of a batch: an LDR or STR of Size
// bytes (1, 2, 4 or 8) with X0 as the transfer register. A store's data is
// Val; a load's result is written to Val (zero-extended).
type BatchAccess struct {
	VA    mem.VA
	Val   uint64
	Size  uint8
	Write bool
}

// batchReg is the transfer register of batch accesses.
const batchReg = 0

// RunBatch runs the accesses of b in order, as Run would one by one, and
// returns how many completed. It stops before completing b[n] when that
// access exits to the caller (ExitException: the guest took an exception
// at EL1 and the context is at its vector, with ELR at the access; or
// ExitMMIO, completed by CompleteMMIO, after which b[n] is complete and the
// caller goes on from b[n+1], a load's value being in X0), or on an error.
//
// Accesses that hit the TLB run with the physical CPU's lock held from one
// to the next, up to batchHold of them: a TLB invalidation waits for them
// as for a single access (it completes after them, which the architecture
// allows: they were issued before it). Everything else (TLB misses,
// stage-2 faults and their handling) goes through Run.
func (v *VCPU) RunBatch(b []BatchAccess) (n int, exit Exit, err error) {
	if v.cpu == nil {
		return 0, Exit{}, ErrNotLoaded
	}
	if v.hasPending {
		return 0, Exit{}, ErrPendingMMIO
	}
	pe := v.pe
	for n < len(b) {
		c := v.cpu
		c.mu.Lock()
		held := 0
		var e cpu.Exception
		for ; n < len(b) && held < batchHold; n, held = n+1, held+1 {
			a := &b[n]
			var done bool
			if a.Write {
				e, done = pe.WriteHit(a.VA, int(a.Size), a.Val)
			} else {
				var val uint64
				val, e, done = pe.ReadHit(a.VA, int(a.Size))
				a.Val = val
			}
			if !done || e.Taken() {
				break
			}
			v.pe.PC += 4
		}
		c.mu.Unlock()
		if n == len(b) {
			break
		}
		if e.Taken() {
			// A hit whose PA has no memory: the External abort was taken.
			var retry bool
			exit, retry, err = v.exception(e)
			if err != nil || !retry {
				return n, exit, err
			}
		}
		if held < batchHold {
			// b[n] needs the full path.
			a := &b[n]
			if a.Write {
				v.ctx.X[batchReg] = a.Val
			}
			exit, err = v.Run(Access{VA: a.VA, Size: int(a.Size), Write: a.Write, Rt: batchReg})
			if err != nil || exit.Reason != ExitNone {
				return n, exit, err
			}
			if !a.Write {
				a.Val = v.ctx.X[batchReg]
			}
			n++
		}
	}
	return n, Exit{}, nil
}

// batchHold bounds the accesses run under one hold of the CPU lock.
const batchHold = 256
