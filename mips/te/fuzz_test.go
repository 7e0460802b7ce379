package te_test

import (
	"encoding/binary"
	"testing"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/randprog"
	"github.com/nestmmu/nestmmu/mips/te"
)

// decodeOp turns 12 fuzzer bytes into one guest operation. Addresses are
// mostly drawn near interesting places so that the fuzzer reaches mapped
// pages quickly; raw addresses are possible too.
func decodeOp(b []byte) cp0.Op {
	kind := cp0.OpKind(b[0] % uint8(cp0.NumOpKinds))
	v := binary.LittleEndian.Uint32(b[4:])
	w := binary.LittleEndian.Uint32(b[8:])
	var va uint32
	switch b[1] % 8 {
	case 0:
		va = 0x00400000 + w%0x20000
	case 1:
		va = 0x60000000 + w%0x10000
	case 2:
		va = 0x40000000 + w%0x80000
	case 3:
		va = 0x7000 + w%0x1000
	case 4:
		va = 0xbf000000 + w%64
	default:
		va = w
	}
	return cp0.Op{
		Kind: kind, PC: 0x40001000 + uint32(b[2])*4, BD: b[2]&1 == 1,
		VA: va, Size: 1 << (b[3] % 3), Reg: b[1], Sel: b[3] >> 2, Value: v,
	}
}

// FuzzEquivalence runs fuzzer-chosen guest programs on the engine and the
// reference model under the series' semantics, with DirtyLog and in the
// pre-series scheme: no panic, no livelock, identical results and state,
// no duplicate host TLB entry after any operation.
func FuzzEquivalence(f *testing.F) {
	f.Add([]byte("\x05\x0c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x05\x0a\x00\x00\x01\x00\x40\x00\x00\x00\x00\x00\x05\x02\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x05\x03\x00\x00\x42\x00\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00"))
	g := randprog.New(4096, 512<<10, 7)
	m0, _ := newPairNoT(te.Config{PageSize: 4096, RAMSize: 512 << 10})
	var seed []byte
	for i := 0; i < 40; i++ {
		for _, op := range g.Next(m0) {
			var b [12]byte
			b[0] = byte(op.Kind)
			b[1] = 7
			binary.LittleEndian.PutUint32(b[4:], op.Value)
			binary.LittleEndian.PutUint32(b[8:], op.VA)
			seed = append(seed, b[:]...)
			m0.Exec(op)
		}
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mode := range []te.Config{{}, {DirtyLog: true}, {Legacy: true}} {
			cfg := mode
			cfg.PageSize, cfg.RAMSize, cfg.HostTLBEntries = 4096, 512<<10, 4
			m, e := newPair(t, cfg)
			for i := 0; i+12 <= len(data) && i < 12*2000; i += 12 {
				op := decodeOp(data[i : i+12])
				if !randprog.Allowed(m, op, 4096) {
					continue
				}
				want, got := m.Exec(op), e.Exec(op)
				if want != got {
					t.Fatalf("%+v op %d %v:\n ref %v\n got %v", mode, i/12, op, want, got)
				}
				if d := e.HostTLB().Duplicates(); d != "" {
					t.Fatalf("%+v op %d %v: %s", mode, i/12, op, d)
				}
			}
			if s := randprog.CompareState(m, e); s != "" {
				t.Fatal(s)
			}
			if e.Stats.Livelocks != 0 {
				t.Fatal("livelock")
			}
		}
	})
}
