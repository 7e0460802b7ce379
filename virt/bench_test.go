package virt_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/virt"
)

// benchMachine is a machine a benchmark runs programs on.
type benchMachine interface {
	LoadFile(path string) (*virt.Image, error)
	Run(budget uint64) error
	Retired() uint64
	Close()
}

type bareBench struct{ *virt.Board }

func (m bareBench) Retired() uint64 { return m.CPU.Retired }
func (m bareBench) Close()          {}

type nestedBench struct{ *virt.Nested }

func (m nestedBench) Retired() uint64 { return m.CPU.Retired }

// benchProgram runs a test program to SYSTEM_OFF b.N times on machines
// from mk and reports the interpreter's speed in instructions per second.
func benchProgram(b *testing.B, name string, mk func() (benchMachine, error)) {
	path := filepath.Join("..", "testdata", "a64", name+".elf")
	var insns uint64
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m, err := mk()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.LoadFile(path); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := m.Run(1 << 40); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
		insns += m.Retired()
		b.StopTimer()
		m.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(insns)/elapsed.Seconds(), "insns/s")
	b.ReportMetric(float64(insns)/float64(b.N), "insns/op")
}

// bare makes the bare board.
func bare() (benchMachine, error) {
	m, err := virt.New(virt.Config{})
	return bareBench{m}, err
}

// BenchmarkISA: the isa program (integer instruction mix, MMU off at EL2).
func BenchmarkISA(b *testing.B) { benchProgram(b, "isa", bare) }

// BenchmarkLoop: the loop program (a long integer and memory loop at EL1
// with stage 1 and stage 2 on).
func BenchmarkLoop(b *testing.B) { benchProgram(b, "loop", bare) }

// BenchmarkLoopNested: the loop program as a guest hypervisor under L0
// (its EL1 loop as L2 on the shadow stage 2), FEAT_NV and FEAT_NV2.
func BenchmarkLoopNested(b *testing.B) {
	for _, m := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		b.Run(m.String(), func(b *testing.B) {
			benchProgram(b, "loop", func() (benchMachine, error) {
				n, err := virt.NewNested(virt.NestedConfig{Mode: m})
				return nestedBench{n}, err
			})
		})
	}
}
