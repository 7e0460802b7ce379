package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/regfile"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/demo"
	"github.com/nestmmu/nestmmu/mem"
)

var update = flag.Bool("update", false, "rewrite the generated files in testdata/")

// The example inputs in ../../testdata are generated here, so their
// contents are reproducible and reviewable as code:
//
//	go test ./cmd/nestmmu -run TestTestdata -update
//
// Without -update the test checks that the files still match.
func TestTestdata(t *testing.T) {
	img, regs := guestImage(t)
	files := map[string][]byte{
		"../../testdata/guest-ram.bin":  img,
		"../../testdata/guest.regs":     regs,
		"../../testdata/two-stage.json": twoStageDoc(t),
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		want := files[name]
		if *update {
			if err := os.WriteFile(name, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (generate it with -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from its generator (run with -update after changing it)", name)
		}
	}
}

// Layout of testdata/guest-ram.bin: 64 KiB of a guest's RAM at 0x40000000
// holding its translation tables (4K granule, 48-bit VAs).
const (
	guestBase  = 0x4000_0000
	guestSize  = 0x1_0000
	guestTTBR0 = 0x4000_1000
)

// guestImage builds a guest's tables: TTBR0 maps two user pages at
// 0x400000 (EL0 read/write, never executable) to 0x40080000; TTBR1 maps
// the kernel's linear map, 0xffff000000000000 -> 0x40000000 with two 2M
// blocks (EL1 read/write, never executable), and a device page
// 0xffff800000000000 -> 0x09000000 (the virt board's UART).
func guestImage(t *testing.T) (image, regs []byte) {
	ram, err := mem.NewSparse([]mem.Range{{Base: guestBase, Size: guestSize}})
	if err != nil {
		t.Fatal(err)
	}
	f := desc.Format{Granule: sysreg.Granule4K}
	alloc := &ttbuild.Alloc{Next: guestTTBR0, End: guestBase + guestSize}
	t0, err := ttbuild.New(ram, alloc, f, false, 48, 0)
	if err != nil {
		t.Fatal(err)
	}
	t1, err := ttbuild.New(ram, alloc, f, false, 48, 0)
	if err != nil {
		t.Fatal(err)
	}
	user := desc.S1Leaf{AttrIndx: 0, AP: 0b01, SH: sysreg.SHInner, AF: true, NG: true, PXN: true, UXN: true}
	for i := uint64(0); i < 2; i++ {
		user.OA = 0x4008_0000 + i<<12
		if err := t0.MapS1(0x40_0000+i<<12, 3, user); err != nil {
			t.Fatal(err)
		}
	}
	// TTBR1's tables index the VA's low 48 bits.
	kernel := desc.S1Leaf{AttrIndx: 0, AP: 0b00, SH: sysreg.SHInner, AF: true, PXN: true, UXN: true}
	for i := uint64(0); i < 2; i++ {
		kernel.OA = guestBase + i<<21
		if err := t1.MapS1(i<<21, 2, kernel); err != nil {
			t.Fatal(err)
		}
	}
	dev := desc.S1Leaf{OA: 0x0900_0000, AttrIndx: 1, AP: 0b00, AF: true, PXN: true, UXN: true}
	if err := t1.MapS1(0x8000_0000_0000, 3, dev); err != nil {
		t.Fatal(err)
	}
	image = make([]byte, guestSize)
	for pa, v := range ram.Words() {
		binary.LittleEndian.PutUint64(image[pa-guestBase:], v)
	}
	var r vmsa.Regs
	r.SCTLR_EL1 = sysreg.SCTLRFields{M: true, C: true, I: true}.Value()
	r.TCR_EL1 = sysreg.TCRFields{T0SZ: 16, T1SZ: 16, TG0: sysreg.Granule4K, TG1: sysreg.Granule4K, IPS: sysreg.PS48,
		IRGN0: sysreg.RGNWBWA, ORGN0: sysreg.RGNWBWA, SH0: sysreg.SHInner,
		IRGN1: sysreg.RGNWBWA, ORGN1: sysreg.RGNWBWA, SH1: sysreg.SHInner, AS: true}.Value()
	r.TTBR0_EL1 = sysreg.TTBRFields{BADDR: t0.Root, ASID: 1}.Value()
	r.TTBR1_EL1 = sysreg.TTBRFields{BADDR: t1.Root}.Value()
	r.MAIR_EL1 = sysreg.MAIROf(sysreg.MAIRNormalWB, sysreg.MAIRDevicenGnRE, sysreg.MAIRNormalNC)
	var b strings.Builder
	b.WriteString("# A guest's EL1&0 registers for testdata/guest-ram.bin (raw image at 0x40000000):\n")
	b.WriteString("# 4K granule, 48-bit VAs in both ranges, 16-bit ASIDs.\n")
	for _, n := range []string{"SCTLR_EL1", "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "MAIR_EL1"} {
		v, _ := regfile.Get(&r, n)
		fmt.Fprintf(&b, "%-9s = %#x\n", n, v)
	}
	return image, []byte(b.String())
}

// twoStageDoc writes the demonstration machine (package demo: a guest's
// 4-level stage 1 in its IPA space over a 4-level stage 2) as an at-json
// document.
func twoStageDoc(t *testing.T) []byte {
	m, err := demo.TwoStage()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  \"ram\": [{\"base\": \"%#x\", \"size\": \"%#x\"}],\n  \"mem\": {", demo.RAMBase, demo.RAMSize)
	words := m.Mem.Words()
	addrs := make([]mem.PA, 0, len(words))
	for a := range words {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	for i, a := range addrs {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n    \"%#x\": \"%#x\"", uint64(a), words[a])
	}
	b.WriteString("\n  },\n  \"regs\": {")
	first := true
	for _, n := range regfile.Names() {
		v, _ := regfile.Get(&m.Regs, n)
		def, _ := regfile.Get(&vmsa.Regs{}, n)
		if strings.HasPrefix(n, "ID_") || v == def {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "\n    %q: \"%#x\"", n, v)
	}
	fmt.Fprintf(&b, "\n  },\n  \"pstate\": {\"el\": %d, \"pan\": 0},\n  \"ops\": [", m.PSTATE.EL)
	for i, op := range m.Ops {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n    {\"op\": %q, \"va\": \"%#x\"}", op.Op, op.VA)
	}
	b.WriteString("\n  ],\n  \"watch\": [")
	for i, a := range m.Watch {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "\"%#x\"", a)
	}
	b.WriteString("]\n}\n")
	// The document reads back as the same machine.
	back, err := atjson.Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("generated document: %v", err)
	}
	if back.Regs != m.Regs || len(back.Ops) != len(m.Ops) {
		t.Fatal("generated document does not read back as the demonstration machine")
	}
	return []byte(b.String())
}
