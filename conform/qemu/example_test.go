package qemu_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nestmmu/nestmmu/conform/qemu"
)

// Example runs the at-json contract's example on QEMU. (Compiled, not run:
// it needs qemu-system-aarch64.)
func Example() {
	o, err := qemu.New(qemu.Options{})
	if err != nil {
		log.Fatal(err) // errors.Is(err, qemu.ErrNotFound) when QEMU is absent
	}
	defer o.Close()
	res, err := o.Run(context.Background(), []qemu.Case{{
		Regs: map[string]uint64{"HCR_EL2": 0x80000000, "SCTLR_EL1": 0x30d00805,
			"TCR_EL1": 0x8580190019, "TTBR0_EL1": 0x44000000, "MAIR_EL1": 0xff},
		Mem: map[uint64]uint64{0x44000000: 0x44001003, 0x44001000: 0x44002003,
			0x44002008: 0x40001703, 0x44002010: 0x40002343},
		Ops:   []qemu.Op{{Name: "S1E1R", VA: 0x1234}, {Name: "S1E1R", VA: 0x2010}},
		Watch: []uint64{0x44002010},
	}})
	if err != nil {
		log.Fatal(err)
	}
	for _, op := range res[0].Ops {
		fmt.Println(op) // PAR 0xff00000040001b80, PAR 0xff00000040002b80
	}
	fmt.Printf("%#x\n", res[0].Watch[0]) // 0x40002743: the walk set AF
}
