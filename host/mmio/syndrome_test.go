package mmio

import (
	"errors"
	"testing"
)

func TestESRFields(t *testing.T) {
	// ISS bit positions of a Data Abort (ESR_ELx, ISS encoding for an
	// exception from a Data Abort): every field set to a distinct value.
	e := ESR(0x24)<<26 | 1<<25 | 1<<24 | 0b10<<22 | 1<<21 | 17<<16 | 1<<15 | 1<<14 |
		1<<13 | 1<<10 | 1<<9 | 1<<8 | 1<<7 | 1<<6 | 0x0d
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"EC", uint64(e.EC()), 0x24},
		{"IL", b2u(e.IL()), 1},
		{"ISV", b2u(e.ISV()), 1},
		{"SAS", uint64(e.SAS()), 2},
		{"SSE", b2u(e.SSE()), 1},
		{"SRT", uint64(e.SRT()), 17},
		{"SF", b2u(e.SF()), 1},
		{"AR", b2u(e.AR()), 1},
		{"VNCR", b2u(e.VNCR()), 1},
		{"FnV", b2u(e.FnV()), 1},
		{"EA", b2u(e.EA()), 1},
		{"CM", b2u(e.CM()), 1},
		{"S1PTW", b2u(e.S1PTW()), 1},
		{"WnR", b2u(e.WnR()), 1},
		{"DFSC", uint64(e.DFSC()), 0x0d},
		{"ISS", uint64(e.ISS()), uint64(e) & 0x1ffffff},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if z := ESR(0); z.ISV() || z.SRT() != 0 || z.WnR() || z.EC() != 0 {
		t.Errorf("zero ESR has fields set")
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func TestFaultIPA(t *testing.T) {
	tests := []struct {
		hpfar, far, want uint64
	}{
		// HPFAR.FIPA (bits 43:4) = IPA[51:12].
		{0x12340, 0xffff000000000abc, 0x1234abc},
		{0xfffffffffff0, 0xfff, 0xffff_ffff_ffff_f000&(1<<52-1) | 0xfff},
		{1 << 63, 0x10, 0x10}, // NS bit is not part of the address
	}
	for _, tt := range tests {
		if got := FaultIPA(tt.hpfar, tt.far); got != tt.want {
			t.Errorf("FaultIPA(%#x, %#x) = %#x, want %#x", tt.hpfar, tt.far, got, tt.want)
		}
	}
}

func TestDecodeSyndrome(t *testing.T) {
	const far, ipa = 0xffff800012345678, 0x9000_0678
	tests := []struct {
		name string
		esr  ESR
		want Access
	}{
		// SAS gives size 1<<SAS; SRT the register; SF the register width.
		{"LDR X3", esrDA(true, 3, false, 3, true, false, false),
			Access{Size: 8, Reg: 3, Sixtyfour: true}},
		{"STR W4", esrDA(true, 2, false, 4, false, false, true),
			Access{Size: 4, Reg: 4, Write: true}},
		{"LDRSB W5 (SSE, SF=0)", esrDA(true, 0, true, 5, false, false, false),
			Access{Size: 1, Reg: 5, SignExtend: true}},
		{"LDRSB X5 (SSE, SF=1)", esrDA(true, 0, true, 5, true, false, false),
			Access{Size: 1, Reg: 5, SignExtend: true, Sixtyfour: true}},
		{"LDRSW X6", esrDA(true, 2, true, 6, true, false, false),
			Access{Size: 4, Reg: 6, SignExtend: true, Sixtyfour: true}},
		{"LDARH W7 (AR)", esrDA(true, 1, false, 7, false, true, false),
			Access{Size: 2, Reg: 7, AcquireRelease: true}},
		{"STR XZR (SRT=31)", esrDA(true, 3, false, 31, true, false, true),
			Access{Size: 8, Reg: 31, Sixtyfour: true, Write: true}},
		// SSE only describes loads: ignored for a store.
		{"store with SSE", esrDA(true, 0, true, 1, false, false, true),
			Access{Size: 1, Reg: 1, Write: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSyndrome(tt.esr, far, ipa)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.IPA, want.VA = ipa, far
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestDecodeSyndromeRefused(t *testing.T) {
	ok := esrDA(true, 2, false, 1, false, false, false)
	tests := []struct {
		name  string
		esr   ESR
		kind  error
		abort bool
	}{
		{"ISV=0", esrDA(false, 0, false, 0, false, false, false), ErrNoSyndrome, false},
		{"EC 0x25", ok&^(0x3f<<26) | 0x25<<26, ErrNotDataAbort, false},
		{"EC 0x20 (instruction abort)", ok&^(0x3f<<26) | 0x20<<26, ErrNotDataAbort, false},
		{"CM=1", ok | 1<<8, ErrCacheMaintenance, false},
		{"S1PTW=1", ok | 1<<7, ErrCannotEmulate, true},
		{"EA=1", ok | 1<<9, ErrCannotEmulate, true},
		{"FnV=1", ok | 1<<10, ErrCannotEmulate, true},
		{"VNCR=1", ok | 1<<13, ErrCannotEmulate, true},
		{"DFSC alignment 0x21", ok&^0x3f | 0x21, ErrCannotEmulate, true},
		{"DFSC external abort 0x10", ok&^0x3f | 0x10, ErrCannotEmulate, true},
		{"DFSC address size 0x01", ok&^0x3f | 0x01, ErrCannotEmulate, true},
		{"SAS=11 SF=0", esrDA(true, 3, false, 1, false, false, false), ErrCannotEmulate, true},
		{"SSE with SAS=11", esrDA(true, 3, true, 1, true, false, false), ErrCannotEmulate, true},
		{"SSE word into W", esrDA(true, 2, true, 1, false, false, false), ErrCannotEmulate, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSyndrome(tt.esr, 0, 0)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("error %v, want %v", err, tt.kind)
			}
			if errors.Is(err, ErrCannotEmulate) != tt.abort {
				t.Errorf("errors.Is(%v, ErrCannotEmulate) = %t, want %t", err, !tt.abort, tt.abort)
			}
		})
	}
	// Accepted DFSCs: translation, access flag and permission at each level,
	// and translation at level -1.
	for _, dfsc := range []uint8{0x04, 0x05, 0x06, 0x07, 0x08, 0x0b, 0x0c, 0x0f, 0x2b} {
		if _, err := DecodeSyndrome(ok&^0x3f|ESR(dfsc), 0, 0); err != nil {
			t.Errorf("DFSC %#x refused: %v", dfsc, err)
		}
	}
}
