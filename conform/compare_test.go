package conform

import (
	"slices"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/conform/qemu"
)

// TestParMask checks the PAR_EL1 bits the comparison ignores (PAR_EL1
// description): NS (UNKNOWN for Non-secure) and [55:52] on success,
// [63:52] on a fault; S (bit 9 when F=1) is kept.
func TestParMask(t *testing.T) {
	for _, tc := range []struct{ in, want uint64 }{
		{0xff00000040001b80, 0xff00000040001980}, // success: NS dropped, ATTR kept
		{0xff50000040001980, 0xff00000040001980}, // success: [55:52] dropped
		{0xab00000000000b1d, 0xb1d},              // fault: [63:52] dropped, S (bit 9) kept
		{0x81f, 0x81f},
		{0x0000000040001000, 0x0000000040001000},
	} {
		if got := parMask(tc.in); got != tc.want {
			t.Errorf("parMask(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

// TestClassOf checks the mismatch class names built from a PAR.
func TestClassOf(t *testing.T) {
	for _, tc := range []struct{ d, want string }{
		{"PAR 0xff00000040001980", "success"},
		{"PAR 0x81f", "fault permission L3"},
		{"PAR 0xb1d", "fault permission L2 PTW S2"},
		{"PAR 0xa0d", "fault translation L2 S2"},
		{"PAR 0x805", "fault address-size L2"},
		{"PAR 0x8d7", "fault translation L-1"}, // FST 0b101011
		{"PAR 0x8ff", "fault FST 0x3f"},
		{"exception EC 0x25 FSC 0x15 S1PTW 0 FAR 0x1000", "exception EC 0x25 FSC 0x15 S1PTW 0"},
		{"exception EC 0x0", "exception EC 0x0"},
	} {
		if got := classOf(tc.d); got != tc.want {
			t.Errorf("classOf(%q) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// TestNonTransientVariants checks the attribute QEMU reports when stage 2
// downgrades a stage-1 Write-Back Transient nibble to Write-Through.
func TestNonTransientVariants(t *testing.T) {
	for _, tc := range []struct {
		in   uint8
		want []uint8
	}{
		{0x2b, []uint8{0xab}},
		{0x23, []uint8{0x2b, 0xa3, 0xab}},
		{0xff, nil},
		{0x44, nil},
		{0x08, nil}, // Device
	} {
		if got := nonTransientVariants(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("nonTransientVariants(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

// TestCrashesQEMU checks which model answers predict QEMU's
// do_ats_write assertion: only a final stage-2 Permission fault of AT
// S12E*.
func TestCrashesQEMU(t *testing.T) {
	res := func(f vmsa.Fault) at.Result { return at.Result{Translation: vmsa.Translation{Fault: f}} }
	perm := vmsa.Fault{Kind: vmsa.FaultPermission, Level: 2, Stage2: true}
	for _, tc := range []struct {
		op   string
		r    at.Result
		want bool
	}{
		{"S12E1R", res(perm), true},
		{"S12E0W", res(perm), true},
		{"S1E1R", res(perm), false},
		{"S12E1R", res(vmsa.Fault{Kind: vmsa.FaultPermission, Level: 2, Stage2: true, S1PTW: true}), false},
		{"S12E1R", res(vmsa.Fault{Kind: vmsa.FaultTranslation, Level: 2, Stage2: true}), false},
		{"S12E1R", res(vmsa.Fault{Kind: vmsa.FaultPermission, Level: 3}), false},
	} {
		if got := crashesQEMU(tc.op, tc.r); got != tc.want {
			t.Errorf("crashesQEMU(%s, %v) = %v, want %v", tc.op, tc.r.Fault(), got, tc.want)
		}
	}
}

// TestExplainWatch checks the dirty-state deviation on watched words: only
// bit 7 of a valid DBM descriptor, and only when the case has a write AT.
func TestExplainWatch(t *testing.T) {
	w := &qemu.Case{Ops: []qemu.Op{{Name: "S1E1WP", VA: 0}}}
	r := &qemu.Case{Ops: []qemu.Op{{Name: "S1E1R", VA: 0}}}
	const dbm = 1<<51 | 1<<10 | 3
	for _, tc := range []struct {
		c    *qemu.Case
		m, q uint64
		want string
	}{
		{w, dbm | 1<<7, dbm, DevATDirty},                 // stage 1: AP[2] cleared
		{w, dbm, dbm | 1<<7, DevATDirty},                 // stage 2: S2AP[1] set
		{w, swap64(dbm | 1<<7), swap64(dbm), DevATDirty}, // big-endian tables
		{r, dbm | 1<<7, dbm, ""},                         // no write AT
		{w, 1<<10 | 3 | 1<<7, 1<<10 | 3, ""},             // no DBM
		{w, dbm | 1<<7, dbm &^ (1 << 10), ""},            // other bits differ
	} {
		if got := explainWatch(tc.c, tc.m, tc.q, false); got != tc.want {
			t.Errorf("explainWatch(%v, %#x, %#x) = %q, want %q", tc.c.Ops, tc.m, tc.q, got, tc.want)
		}
	}
}

// TestDescribeMatchesAcrossSides checks that the model's and QEMU's
// descriptions agree for equivalent answers (what compare relies on).
func TestDescribeMatchesAcrossSides(t *testing.T) {
	m := at.Result{PAR: sysreg.PAR(0xff00000040001b80)}
	q := qemu.OpResult{PAR: 0xff00000040001980}
	if describeModel(m) != describeQEMU(q) {
		t.Errorf("success: %q vs %q", describeModel(m), describeQEMU(q))
	}
	me := at.Result{Taken: true, Exception: at.Exception{Kind: at.DataAbort, ESR: 0x96000155, FAR: 0x1000}}
	qe := qemu.OpResult{Exception: true, ESR: 0x96000155, FAR: 0x1000, Vector: 4}
	if describeModel(me) != describeQEMU(qe) {
		t.Errorf("external abort: %q vs %q", describeModel(me), describeQEMU(qe))
	}
	mu := at.Result{Taken: true, Exception: at.Exception{Kind: at.Undefined}}
	qu := qemu.OpResult{Exception: true, ESR: 0x2000000}
	if describeModel(mu) != describeQEMU(qu) {
		t.Errorf("undefined: %q vs %q", describeModel(mu), describeQEMU(qu))
	}
}
