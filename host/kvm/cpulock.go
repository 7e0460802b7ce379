package kvm

import (
	"runtime"
	"sync"
	"time"
)

// cpuLock is a physical CPU's lock (pcpu.mu). Its holds are short (one
// guest access, a batch of up to batchHold TLB hits, one TLB invalidation)
// and contended mostly by a broadcast TLB invalidation waiting for the
// accesses in flight on the other CPUs. Lock spins on TryLock for up to
// cpuLockSpin before it blocks: a blocked worker goroutine leaves its
// thread's core idle until the holder wakes it, which on a loaded or
// virtualised host costs far more than the hold it waited for.
type cpuLock struct{ sync.Mutex }

// cpuLockSpin bounds the spin of a contended Lock.
const cpuLockSpin = 50 * time.Microsecond

// Lock takes the lock.
func (l *cpuLock) Lock() {
	if l.TryLock() {
		return
	}
	if runtime.GOMAXPROCS(0) > 1 {
		var t0 time.Time
		var sink uint32
		for i := 1; ; i++ {
			spinPause(&sink)
			if l.TryLock() {
				return
			}
			if i%16 == 0 {
				// Read the clock only now and then: a spin of up to
				// cpuLockSpin, measured from the first check.
				if t0.IsZero() {
					t0 = time.Now()
				} else if time.Since(t0) > cpuLockSpin {
					break
				}
			}
		}
	}
	l.Mutex.Lock()
}

// spinPause waits a few dozen nanoseconds without touching the lock's
// cache line (the stores to the caller's *sink keep the loop).
//
//go:noinline
func spinPause(sink *uint32) {
	for i := uint32(0); i < 32; i++ {
		*sink += i
	}
}
