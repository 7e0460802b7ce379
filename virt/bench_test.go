package virt_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/virt"
)

// benchProgram runs a test program to SYSTEM_OFF b.N times and reports
// the interpreter's speed in instructions per second.
func benchProgram(b *testing.B, name string) {
	path := filepath.Join("..", "testdata", "a64", name+".elf")
	var insns uint64
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m, err := virt.New(virt.Config{})
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
		insns += m.CPU.Retired
	}
	b.ReportMetric(float64(insns)/elapsed.Seconds(), "insns/s")
	b.ReportMetric(float64(insns)/float64(b.N), "insns/op")
}

// BenchmarkISA: the isa program (integer instruction mix, MMU off at EL2).
func BenchmarkISA(b *testing.B) { benchProgram(b, "isa") }

// BenchmarkLoop: the loop program (a long integer and memory loop at EL1
// with stage 1 and stage 2 on).
func BenchmarkLoop(b *testing.B) { benchProgram(b, "loop") }

// BenchmarkLoopNested: the loop program as a guest hypervisor under L0
// (its EL1 loop as L2 on the shadow stage 2), FEAT_NV and FEAT_NV2.
func BenchmarkLoopNested(b *testing.B) {
	for _, m := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		b.Run(m.String(), func(b *testing.B) {
			path := filepath.Join("..", "testdata", "a64", "loop.elf")
			var insns uint64
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				n, err := virt.NewNested(virt.NestedConfig{Mode: m})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := n.LoadFile(path); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				if err := n.Run(1 << 40); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(t0)
				insns += n.CPU.Retired
				b.StopTimer()
				n.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(insns)/elapsed.Seconds(), "insns/s")
			b.ReportMetric(float64(insns)/float64(b.N), "insns/op")
		})
	}
}
