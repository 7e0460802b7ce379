package sim

import (
	"sync/atomic"
	"testing"
	"time"
)

// fakeRunner is a runner with a fixed budget of slices.
type fakeRunner struct{ done, budget int }

func (f *fakeRunner) slice(*worker) error { f.done++; return nil }
func (f *fakeRunner) ended() bool         { return f.done >= f.budget }
func (f *fakeRunner) progress() float64   { return share(uint64(f.done), uint64(f.budget)) }
func (f *fakeRunner) put() error          { return nil }

func never() bool { return false }

// TestSchedulerTakesFurthestBehind: a worker gets the runner with the
// least share done, one that last ran on it when nearly as far behind,
// never one running elsewhere or ended.
func TestSchedulerTakesFurthestBehind(t *testing.T) {
	var s scheduler
	a, b, c := &fakeRunner{done: 5, budget: 10}, &fakeRunner{done: 1, budget: 10}, &fakeRunner{done: 10, budget: 10}
	s.add(a)
	s.add(b)
	s.add(c)
	sl := s.take(0, never)
	if sl == nil || sl.r != b {
		t.Fatalf("take: got %v, want the runner 10%% done", sl)
	}
	sl2 := s.take(1, never)
	if sl2 == nil || sl2.r != a {
		t.Fatalf("second take: got %v, want the runner 50%% done (the other is running, the third ended)", sl2)
	}
	s.release(sl2)
	b.done = 5 // now as far as a, which last ran on worker 1
	s.release(sl)
	if got := s.take(1, never); got == nil || got.r != a {
		t.Fatalf("worker 1 did not get back the runner that last ran on it")
	}
}

// TestSchedulerWaitsForRelease: with every runner left running elsewhere,
// take blocks until one is released (no polling), returns nil once all
// have ended, and returns nil when interrupted (a world stop) after wake.
func TestSchedulerWaitsForRelease(t *testing.T) {
	var s scheduler
	r := &fakeRunner{budget: 2}
	s.add(r)
	sl := s.take(0, never)
	got := make(chan *slot)
	go func() { got <- s.take(1, never) }()
	select {
	case x := <-got:
		t.Fatalf("take returned %v while the only runner was running", x)
	case <-time.After(20 * time.Millisecond):
	}
	r.done++
	s.release(sl)
	sl = <-got
	if sl == nil || sl.r != r || sl.last != 1 {
		t.Fatalf("after release: got %v, want the runner on worker 1", sl)
	}

	// Interrupted while waiting.
	var stop atomic.Bool
	go func() { got <- s.take(0, stop.Load) }()
	time.Sleep(10 * time.Millisecond)
	stop.Store(true)
	s.wake()
	select {
	case x := <-got:
		if x != nil {
			t.Fatalf("interrupted take returned %v", x)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("take did not return after wake")
	}

	r.done++ // ended
	s.release(sl)
	if x := s.take(0, never); x != nil {
		t.Fatalf("take with every runner ended: got %v", x)
	}
}
