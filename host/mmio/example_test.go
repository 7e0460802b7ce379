package mmio_test

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/host/mmio"
)

type regs struct {
	x  [31]uint64
	sp uint64
}

func (r *regs) X(n int) uint64       { return r.x[n] }
func (r *regs) SetX(n int, v uint64) { r.x[n] = v }
func (r *regs) SP() uint64           { return r.sp }
func (r *regs) SetSP(v uint64)       { r.sp = v }
func (r *regs) PC() uint64           { return 0xffff_8000_0010_0000 }

type uart struct{}

func (uart) Read(ipa uint64, size int) (uint64, error) { return 0x41, nil }
func (uart) Write(ipa uint64, size int, v uint64) error {
	fmt.Printf("device write %#x size %d value %#x\n", ipa, size, v)
	return nil
}

// A guest stores a pair of registers to a device with STP X2,X3,[X1],#16.
// A pair is never described by the syndrome (ISV=0), so the instruction is
// fetched and decoded.
func Example() {
	r := &regs{}
	r.x[1] = 0xffff_0000_0900_0000 // device VA
	r.x[2], r.x[3] = 0x11, 0x22
	const (
		esr   = mmio.ESR(0x24<<26 | 1<<25 | 1<<6 | 0x07) // DABT_LOW, WnR, translation fault L3
		far   = 0xffff_0000_0900_0000
		hpfar = 0x0900_0000 >> 8 // HPFAR.FIPA = IPA[51:12] at bit 4
	)
	stp := mmio.FetchFunc(func() (uint32, error) { return 0xa8810c22, nil }) // STP X2,X3,[X1],#16
	a, err := mmio.Decode(esr, far, mmio.FaultIPA(hpfar, far), r, stp)
	if errors.Is(err, mmio.ErrCannotEmulate) {
		fmt.Println("inject abort:", err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := mmio.Emulate(&a, r, uart{}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("X1 = %#x\n", r.x[1])

	// An exclusive cannot be emulated: the guest gets an abort.
	ldxr := mmio.FetchFunc(func() (uint32, error) { return 0xc85f7c20, nil })
	_, err = mmio.Decode(esr&^(1<<6), far, 0x0900_0000, r, ldxr)
	fmt.Println(errors.Is(err, mmio.ErrCannotEmulate), err)
	// Output:
	// device write 0x9000000 size 8 value 0x11
	// device write 0x9000008 size 8 value 0x22
	// X1 = 0xffff000009000010
	// true mmio: instruction 0xc85f7c20 (LDXR X0, [X1]): exclusive or atomic access
}
