package kvm

import (
	"sync"
	"testing"
	"time"
)

// TestCPULockExcludes: the spinning Lock still excludes (short holds
// taken while spinning, long ones after blocking).
func TestCPULockExcludes(t *testing.T) {
	var l cpuLock
	var wg sync.WaitGroup
	n, inside := 0, 0
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				l.Lock()
				inside++
				if inside != 1 {
					t.Errorf("%d holders at once", inside)
				}
				n++
				if i%500 == 0 {
					time.Sleep(2 * cpuLockSpin) // past the spin: the others block
				}
				inside--
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	if n != 8000 {
		t.Fatalf("count %d, want 8000", n)
	}
}

// TestCPULockWaitsForLongHold: a Lock contended beyond cpuLockSpin
// returns only after the holder unlocks.
func TestCPULockWaitsForLongHold(t *testing.T) {
	var l cpuLock
	l.Lock()
	got := make(chan time.Time)
	go func() {
		l.Lock()
		got <- time.Now()
		l.Unlock()
	}()
	time.Sleep(10 * cpuLockSpin)
	released := time.Now()
	l.Unlock()
	if at := <-got; at.Before(released) {
		t.Fatal("Lock returned while the lock was held")
	}
}
