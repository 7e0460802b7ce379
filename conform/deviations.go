package conform

import (
	"bytes"
	"maps"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/conform/qemu"
)

// Known deviations of QEMU 10.0 from the architecture, and one permitted
// implementation choice. Each is matched narrowly: a difference is
// explained only when QEMU's answer is exactly what the model computes for
// the case transformed the way the deviation describes (a prediction), or
// matches a stated fixed pattern. docs/CONFORMANCE.md gives the deciding
// rule for each.
const (
	// DevNoATS1A: QEMU 10.0.2 does not implement FEAT_ATS1A, so AT S1E1A
	// and AT S1E2A are UNDEFINED there (EC 0x00). The model implements
	// the instructions (AArch64.AT with no permission check).
	DevNoATS1A = "QEMU lacks FEAT_ATS1A: AT S1E1A/S1E2A UNDEFINED"
	// DevPTWLevel: with HCR_EL2.PTW=1 and a stage-1 table in stage-2
	// Device memory, AArch64.S2Translate reports the stage-2 Permission
	// fault at the level of the stage-2 descriptor (S2.level); QEMU
	// reports level 0.
	DevPTWLevel = "QEMU reports the HCR_EL2.PTW Device permission fault at level 0"
	// DevCacheDisabledAttrs (permitted choice, not a bug): with
	// SCTLR_ELx.C=0 (or HCR_EL2.CD/ID=1) AArch64.S1Translate /
	// AArch64.S2Translate make Normal memory Non-cacheable, Outer
	// Shareable, and the model reports that; PAR_EL1.ATTR and SH "can be"
	// the resulting attributes or the descriptor's, and QEMU reports the
	// descriptor's (as if C=1, CD=ID=0).
	DevCacheDisabledAttrs = "PAR attributes as if SCTLR_ELx.C=1/HCR_EL2.CD=ID=0 (permitted: PAR_EL1.ATTR/SH may omit cacheability controls)"
	// DevTGEStage1: with HCR_EL2.{E2H,TGE}={0,1}, AArch64.S1Enabled
	// disables the EL1&0 stage 1 (and HCR_EL2.VM behaves as 0); QEMU's AT
	// S1E0*/S1E1*/S12E* at EL2 translate as if TGE were 0.
	DevTGEStage1 = "QEMU ignores HCR_EL2.TGE=1 (E2H=0) for AT of the EL1&0 regime"
	// Dev64KOA52: with a 64KB granule and PAMax 52 (FEAT_LPA),
	// AArch64.LeafBase / AArch64.NextTableBase take OA[51:48] from
	// descriptor bits [15:12] whatever TCR/VTCR.{I}PS says, so non-zero
	// bits there with a smaller PS give an Address size fault; QEMU uses
	// them only when the effective PS is 52 and otherwise ignores them.
	Dev64KOA52 = "QEMU ignores 64KB descriptor bits [15:12] (OA[51:48]) when PS < 52"
	// DevFWBMemAttr: with HCR_EL2.FWB=1, AArch64.S2ApplyFWBMemAttrs reads
	// only MemAttr[2] (Device or not) and MemAttr[1:0] (0b11 stage-1
	// attributes, 0b10 forced Write-Back, otherwise Non-cacheable unless
	// stage 1 is Device), so MemAttr 0bx100 is 0bx101 and MemAttr[3]
	// (RES0 without FEAT_MTE_PERM) is ignored; QEMU makes 0b0100 and every
	// MemAttr[3]=1 encoding Device-nGnRnE.
	DevFWBMemAttr = "QEMU decodes FWB stage-2 MemAttr 0b0100 and MemAttr[3]=1 as Device-nGnRnE"
	// DevFWBDevice: with HCR_EL2.FWB=1 and a stage-2 Device MemAttr
	// (MemAttr[2]=0), AArch64.S2ApplyFWBMemAttrs combines a stage-1 Device
	// type with the stage-2 one (S2CombineS1Device: the more restrictive);
	// QEMU reports the stage-2 Device type alone.
	DevFWBDevice = "QEMU does not combine a stage-1 Device type with an FWB stage-2 Device type"
	// DevFWBForceWBShare: with HCR_EL2.FWB=1 and stage-2 MemAttr 0b110
	// (forced Write-Back) over a stage-1 Device mapping,
	// AArch64.S2ApplyFWBMemAttrs combines the stage-1 memory's
	// shareability (Outer Shareable for Device) with stage 2's; QEMU uses
	// the stage-1 descriptor's SH field.
	DevFWBForceWBShare = "QEMU takes the stage-1 descriptor SH for FWB forced Write-Back over stage-1 Device"
	// DevDeviceNibble: S2CombineS1MemAttrs gives the Device type of the
	// Device stage (S2CombineS1Device when both are Device); the other
	// stage's Normal cacheability, and HCR_EL2.CD=1 (which only makes
	// stage-2 Normal memory Non-cacheable), do not change it. QEMU takes
	// the most restrictive of both stages' low attribute nibbles, reading
	// a Normal inner attribute as a Device type (inner Non-cacheable 0b0100
	// as nGnRE, Write-Through no-allocate 0b1000 as nGRE, ...).
	DevDeviceNibble = "QEMU strengthens a combined Device type from the Normal stage's inner attribute"
	// DevS2Transient: S2CombineS1AttrHints keeps the stage-1 Transient
	// hint in the combined Normal attributes; when stage 2 downgrades a
	// stage-1 Write-Back Transient nibble to Write-Through, QEMU reports
	// Write-Through non-transient.
	DevS2Transient = "QEMU drops the stage-1 Transient hint when stage 2 downgrades Write-Back to Write-Through"
	// DevS2ReservedMemAttr (CONSTRAINED UNPREDICTABLE, not a bug): a
	// stage-2 MemAttr with MemAttr[3:2] != 0b00 and MemAttr[1:0] = 0b00
	// is reserved (S2DecodeMemAttrs); the resulting attributes are
	// CONSTRAINED UNPREDICTABLE, so only PA and the fault status are
	// compared.
	DevS2ReservedMemAttr = "reserved stage-2 MemAttr (CONSTRAINED UNPREDICTABLE attributes)"
	// DevLeafLowBits: AArch64.LeafBase aligns a block descriptor's output
	// address to the block size (the bits below it are RES0 and ignored),
	// then AArch64.OAOutOfRange checks it; QEMU checks the address with
	// those bits and gives an Address size fault when they reach the
	// output size.
	DevLeafLowBits = "QEMU checks RES0 output-address bits below the block size against PS"
	// DevAFOnPermission (CONSTRAINED UNPREDICTABLE, not a bug): when a
	// walk ends in a Permission fault, AArch64.SettingAccessFlagPermitted
	// leaves setting the Access flag CONSTRAINED UNPREDICTABLE
	// (Unpredictable_AFUPDATE); the model does not set it, QEMU may.
	DevAFOnPermission = "Access flag set or not with a Permission fault (CONSTRAINED UNPREDICTABLE)"
	// DevATDirty: AArch64.S1Translate and AArch64.S2Translate update the
	// dirty state (clear AP[2], set S2AP[1]) only for accesses that are
	// not AccessType_AT/IC/DC; QEMU's AT S1E*W / S12E*W set it.
	// The update needs write access to the stage-1 table at stage 2, so
	// where stage 2 maps that table read-only QEMU reports a stage-2
	// Permission fault on the walk instead of the translation.
	DevATDirty = "QEMU updates the dirty state (DBM) for AT writes"
)

// explainWatch returns the known deviation that accounts for a watched
// word differing between the model (m) and QEMU (q), or "". permFault
// reports that some operation of the case took a Permission fault.
func explainWatch(c *qemu.Case, m, q uint64, permFault bool) string {
	write := false
	for _, op := range c.Ops {
		o, err := at.ParseOp(op.Name)
		write = write || err == nil && o.Write()
	}
	for _, swap := range []bool{false, true} {
		mm, qq := m, q
		if swap {
			mm, qq = swap64(m), swap64(q)
		}
		if write && mm^qq == 1<<7 && mm>>51&1 == 1 && mm&1 == 1 {
			return DevATDirty
		}
		if permFault && mm^qq == 1<<10 && mm&1 == 1 {
			return DevAFOnPermission
		}
	}
	return ""
}

// changesWalks reports whether a deviation makes QEMU walk differently
// from the model, so that watched words are not comparable afterwards.
func changesWalks(name string) bool {
	return strings.Contains(name, DevTGEStage1) || strings.Contains(name, Dev64KOA52) ||
		strings.Contains(name, DevLeafLowBits) || name == DevNoATS1A
}

// crashesQEMU reports whether QEMU 10.0 aborts on this operation: an AT
// S12E* whose final stage-2 lookup (not a walk of the stage-1 tables) is a
// Permission fault hits the assertion !res.cacheattrs.is_s2_format in
// do_ats_write (docs/QEMU-ORACLE.md). The architecture gives PAR_EL1 with
// F=1, FST permission, S=1; the model's answer is not compared.
func crashesQEMU(op string, r at.Result) bool {
	if !strings.HasPrefix(op, "S12") {
		return false
	}
	f := r.Fault()
	return strings.HasPrefix(op, "S12") && !r.Taken && f.Kind == vmsa.FaultPermission && f.Stage2 && !f.S1PTW
}

// variantCrashes reports whether the model predicts a QEMU crash for
// operation i of c once QEMU's walk-changing deviations (DevTGEStage1,
// Dev64KOA52) are applied: QEMU then walks further than the architecture
// and may reach a final stage-2 Permission fault.
func variantCrashes(c *qemu.Case, i int) bool {
	op := c.Ops[i].Name
	if !strings.HasPrefix(op, "S12") {
		return false
	}
	// The TGE variants that keep stage 2 (those of explain's DevTGEStage1
	// dimension that can reach a final stage-2 lookup); nil leaves TGE alone.
	tgeVariants := []func(t *qemu.Case){nil}
	if c.Regs["HCR_EL2"]&(hcrE2H|hcrTGE) == hcrTGE {
		tgeVariants = append(tgeVariants,
			func(t *qemu.Case) { t.Regs["HCR_EL2"] &^= hcrTGE },
			func(t *qemu.Case) { t.Regs["HCR_EL2"] &^= hcrTGE | hcrPTW },
			func(t *qemu.Case) { // stage 1 off as TGE=1 requires, stage 2 applied
				t.Regs["HCR_EL2"] &^= hcrTGE
				t.Regs["SCTLR_EL1"] &^= sctlrM
			})
	}
	for k, tv := range tgeVariants {
		for _, oa52 := range []bool{false, true} {
			if k == 0 && !oa52 {
				continue // the case itself: crashesQEMU already said no
			}
			t := cloneCase(c)
			if tv != nil {
				tv(&t)
			}
			if oa52 {
				changed := false
				for range 4 {
					if !clear64KOAHigh(&t, i) {
						break
					}
					changed = true
				}
				if !changed {
					continue
				}
			}
			if mr, err := RunModel(&t); err == nil && crashesQEMU(op, mr.Results[i]) {
				return true
			}
		}
	}
	return false
}

// explain returns the known deviation that accounts for a difference
// between the model's answer m and QEMU's q for operation i of c, or "".
func explain(c *qemu.Case, i int, m at.Result, q qemu.OpResult) string {
	op := c.Ops[i].Name
	if (op == "S1E1A" || op == "S1E2A") && q.Exception && q.EC() == 0 {
		return DevNoATS1A
	}
	hcr := c.Regs["HCR_EL2"]
	// Predicted deviations, alone and combined: QEMU's answer must be
	// exactly the model's answer for the transformed case.
	want := describeQEMU(q)
	// Each dimension is one deviation with its variants (0 = not applied).
	type variant func(t *qemu.Case) bool
	type dimension struct {
		name     string
		variants []variant
	}
	tgeRegs := func(clear uint64) variant {
		return func(t *qemu.Case) bool {
			t.Regs["HCR_EL2"] &^= clear
			return true
		}
	}
	var dims []dimension
	if hcr&(hcrE2H|hcrTGE) == hcrTGE && !strings.HasPrefix(op, "S1E2") {
		// QEMU's effective HCR_EL2 under TGE=1 is not one documented
		// value: stage 1 is walked as if TGE were 0, with or without
		// stage 2 and HCR_EL2.PTW, or stage 1 is off but stage 2 is
		// applied.
		dims = append(dims, dimension{DevTGEStage1, []variant{tgeRegs(hcrTGE), tgeRegs(hcrTGE | hcrPTW),
			tgeRegs(hcrTGE | hcrVM | hcrDC | hcrPTW), func(t *qemu.Case) bool {
				// Stage 1 off as TGE=1 requires, but stage 2 applied.
				t.Regs["HCR_EL2"] &^= hcrTGE
				t.Regs["SCTLR_EL1"] &^= sctlrM
				return true
			}}})
	}
	dims = append(dims, dimension{Dev64KOA52, []variant{func(t *qemu.Case) bool {
		changed := false
		for range 4 {
			if !clear64KOAHigh(t, i) {
				break
			}
			changed = true
		}
		return changed
	}}})
	if !q.Exception && q.PAR&1 == 0 {
		dims = append(dims, dimension{DevCacheDisabledAttrs, []variant{func(t *qemu.Case) bool {
			t.Regs["SCTLR_EL1"] |= sctlrC
			t.Regs["SCTLR_EL2"] |= sctlrC
			t.Regs["HCR_EL2"] &^= hcrCD | hcrID
			return true
		}}})
	}
	total := 1
	for _, d := range dims {
		total *= len(d.variants) + 1
	}
	for combo := 0; combo < total; combo++ {
		t := cloneCase(c)
		var names []string
		ok := true
		for k, x := 0, combo; k < len(dims); k++ {
			v := x % (len(dims[k].variants) + 1)
			x /= len(dims[k].variants) + 1
			if v == 0 {
				continue
			}
			if !dims[k].variants[v-1](&t) {
				ok = false
				break
			}
			names = append(names, dims[k].name)
		}
		if !ok {
			continue
		}
		mr, err := RunModel(&t)
		if err != nil {
			continue
		}
		r := mr.Results[i]
		if combo != 0 && describeModel(r) == want {
			return strings.Join(names, " + ")
		}
		if name := predictPAR(&t, i, r, q, want); name != "" {
			return strings.Join(append(names, name), " + ")
		}
	}
	return ""
}

// predictPAR returns the deviation whose PAR-level prediction (applied to
// the model's answer r for operation i of t) gives QEMU's answer want, or
// "". These deviations change only attributes or the fault reported, not
// which descriptors are read.
func predictPAR(t *qemu.Case, i int, r at.Result, q qemu.OpResult, want string) string {
	hcr := t.Regs["HCR_EL2"]
	if f := r.Fault(); hcr&hcrPTW != 0 && !r.Taken && !q.Exception && f.Kind == vmsa.FaultPermission && f.Stage2 && f.S1PTW {
		// Same PAR except FST = permission level 0 (also after another
		// deviation, e.g. 64KB OA[51:48], turned the model's answer into
		// this fault).
		if parMask(q.PAR) == parMask(uint64(r.PAR))&^(0x3f<<1)|0b001100<<1 {
			return DevPTWLevel
		}
	}
	steps := walkSteps(t, i)
	last := finalS2Leaf(steps)
	ok := !r.Taken && r.PAR&1 == 0 // the model's translation succeeded
	with := func(p sysreg.PAR) bool {
		r2 := r
		r2.PAR = p
		return describeModel(r2) == want
	}
	if ok && hcr&hcrFWB != 0 && fwbFinalReserved(steps) && with(r.PAR&^(0xff<<56|3<<7)|2<<7) {
		return DevFWBMemAttr
	}
	if ok && hcr&hcrFWB != 0 && last != nil && last.Desc>>2&7 == 0b110 {
		// FWB forced Write-Back: shareability from the descriptors.
		for _, sh := range []sysreg.PAR{0b00, 0b11} {
			if with(r.PAR&^(3<<7) | sh<<7) {
				return DevFWBForceWBShare
			}
		}
	}
	if ok && hcr&hcrFWB != 0 && last != nil && last.Desc>>4&1 == 0 && r.PAR>>60 == 0 &&
		with(r.PAR&^(0xff<<56)|sysreg.PAR((last.Desc>>2&3)<<58)) {
		// Stage-1 Device and FWB stage-2 Device (MemAttr[2]=0).
		return DevFWBDevice
	}
	if ok && r.Translation.S2 && r.PAR>>60 == 0 {
		// A combined Device result: QEMU takes the most restrictive of
		// the two stages' low attribute nibbles, reading a Normal stage's
		// inner cacheability as a Device type.
		for dev := sysreg.PAR(0); dev < r.PAR>>56&0xc; dev += 4 {
			if with(r.PAR&^(0xff<<56) | dev<<56) {
				return DevDeviceNibble
			}
		}
	}
	if ok && r.Translation.S2 {
		for _, a := range nonTransientVariants(uint8(r.PAR >> 56)) {
			if with(r.PAR&^(0xff<<56) | sysreg.PAR(a)<<56) {
				return DevS2Transient
			}
		}
	}
	if ok && hcr&hcrFWB == 0 && s2FinalReservedMemAttr(steps) && !q.Exception && q.PAR&1 == 0 &&
		parMask(uint64(r.PAR))&^(0xff<<56|3<<7) == parMask(q.PAR)&^(0xff<<56|3<<7) {
		return DevS2ReservedMemAttr
	}
	if p, found := misalignedOAFault(t, r.Regime, i, steps); found && !q.Exception && parMask(p) == parMask(q.PAR) {
		return DevLeafLowBits
	}
	if p, found := dirtyUpdateS2Fault(t, i, steps); found && !q.Exception && parMask(p) == parMask(q.PAR) {
		return DevATDirty
	}
	return ""
}

// dirtyUpdateS2Fault returns the PAR QEMU gives when, for a write AT, it
// sets the dirty state of a stage-1 leaf with DBM=1 and AP[2]=1 (HA=HD=1)
// whose table stage 2 maps without write permission (S2AP[1]=0): a
// stage-2 Permission fault on the stage-1 walk at that stage-2 level.
func dirtyUpdateS2Fault(c *qemu.Case, i int, steps []vmsa.Step) (uint64, bool) {
	o, err := at.ParseOp(c.Ops[i].Name)
	if err != nil || !o.Write() {
		return 0, false
	}
	var s2 *vmsa.Step
	for k := range steps {
		s := &steps[k]
		switch {
		case s.Stage == 2 && s.ForS1Walk && (s.Kind == desc.Block || s.Kind == desc.Page):
			s2 = s
		case s.Stage == 1 && (s.Kind == desc.Block || s.Kind == desc.Page):
			if s2 == nil || s.Desc>>51&1 == 0 || s.Desc>>7&1 == 0 || s2.Desc>>7&1 == 1 {
				return 0, false
			}
			return 1 | uint64(0b001100|s2.Level&3)<<1 | 1<<8 | 1<<9 | 1<<11, true
		}
	}
	return 0, false
}

// nonTransientVariants returns the MAIR-format Normal attributes that
// differ from a by making one or both Write-Through Transient nibbles
// (0b00RW, RW != 0) non-transient (0b10RW): what QEMU reports when stage 2
// downgraded a stage-1 Write-Back Transient nibble to Write-Through.
func nonTransientVariants(a uint8) []uint8 {
	if a>>4 == 0 {
		return nil
	}
	opts := func(n uint8) []uint8 {
		if n&0b1100 == 0 && n&0b11 != 0 {
			return []uint8{n, n | 0b1000}
		}
		return []uint8{n}
	}
	var out []uint8
	for _, hi := range opts(a >> 4) {
		for _, lo := range opts(a & 0xf) {
			if v := hi<<4 | lo; v != a {
				out = append(out, v)
			}
		}
	}
	return out
}

// misalignedOAFault returns the PAR QEMU gives when a block or page
// descriptor read by operation i has output-address bits below the leaf
// size (RES0, dropped by AArch64.LeafBase's Align) at or above the output
// size: QEMU checks the unaligned address and reports an Address size
// fault at that level.
func misalignedOAFault(c *qemu.Case, regime vmsa.Regime, i int, steps []vmsa.Step) (uint64, bool) {
	va := c.Ops[i].VA
	for _, s := range steps {
		if s.ReadFailed || (s.Kind != desc.Block && s.Kind != desc.Page) {
			continue
		}
		g := granuleOf(c, regime, s.Stage, va)
		if g == 0 {
			return 0, false
		}
		gbits := uint(10 + 2*g) // 12, 14, 16
		lb := gbits + (gbits-3)*uint(3-s.Level)
		ps := outputSize(c, regime, s.Stage, g)
		raw := s.Desc & (1<<48 - 1) &^ (1<<gbits - 1)
		aligned := raw &^ (1<<lb - 1)
		if ps >= 48 || raw>>ps == 0 || aligned>>ps != 0 {
			continue
		}
		par := uint64(1) | uint64(s.Level&3)<<1 | 1<<11 // F, FST address size level n, RES1
		if s.Stage == 2 {
			par |= 1 << 9
			if s.ForS1Walk {
				par |= 1 << 8
			}
		}
		return par, true
	}
	return 0, false
}

// outputSize returns the output-address size of a walk stage: TCR_ELx.IPS
// or PS, VTCR_EL2.PS (48 at most without DS, except 64KB).
func outputSize(c *qemu.Case, regime vmsa.Regime, stage uint8, g int) uint {
	var enc uint64
	ds := false
	switch {
	case stage == 2:
		enc, ds = c.Regs["VTCR_EL2"]>>16&7, c.Regs["VTCR_EL2"]>>32&1 == 1
	case regime == vmsa.RegimeEL10:
		enc, ds = c.Regs["TCR_EL1"]>>32&7, c.Regs["TCR_EL1"]>>59&1 == 1
	case regime == vmsa.RegimeEL20:
		enc, ds = c.Regs["TCR_EL2"]>>32&7, c.Regs["TCR_EL2"]>>59&1 == 1
	default:
		enc, ds = c.Regs["TCR_EL2"]>>16&7, c.Regs["TCR_EL2"]>>32&1 == 1
	}
	b := paBits(enc)
	if b > 48 && g != 3 && !ds {
		b = 48
	}
	return b
}

// s2FinalReservedMemAttr reports whether the final stage-2 leaf has a
// reserved stage-2 MemAttr (HCR_EL2.FWB=0): Normal outer (MemAttr[3:2]
// non-zero) with MemAttr[1:0]=0b00.
func s2FinalReservedMemAttr(steps []vmsa.Step) bool {
	last := finalS2Leaf(steps)
	if last == nil {
		return false
	}
	attr := last.Desc >> 2 & 0xf
	return attr&0b1100 != 0 && attr&0b11 == 0
}

// finalS2Leaf returns the last stage-2 block or page read for the output
// address (not for a stage-1 table), or nil.
func finalS2Leaf(steps []vmsa.Step) *vmsa.Step {
	var last *vmsa.Step
	for k := range steps {
		s := &steps[k]
		if s.Stage == 2 && !s.ForS1Walk && !s.ReadFailed && (s.Kind == desc.Block || s.Kind == desc.Page) {
			last = s
		}
	}
	return last
}

// fwbFinalReserved reports whether the final stage-2 leaf has MemAttr
// 0b0100 or MemAttr[3]=1 (read with HCR_EL2.FWB=1).
func fwbFinalReserved(steps []vmsa.Step) bool {
	last := finalS2Leaf(steps)
	if last == nil {
		return false
	}
	attr := last.Desc >> 2 & 0xf
	return attr == 0b0100 || attr&0b1000 != 0
}

// walkSteps returns the descriptor reads of operation i as the model
// walks c.
func walkSteps(c *qemu.Case, i int) []vmsa.Step {
	m, err := atjson.Parse(bytes.NewReader(MarshalCase(c)))
	if err != nil {
		return nil
	}
	var steps []vmsa.Step
	m.Run(func(j int, _ atjson.Op, r at.Result, tr *vmsa.Trace) {
		if j == i {
			steps = append(steps, tr.Steps...)
		}
	})
	return steps
}

// rewriteDesc replaces the descriptor s read (in either byte order) by d.
func rewriteDesc(c *qemu.Case, s vmsa.Step, d uint64) bool {
	w, ok := c.Mem[s.PA]
	switch {
	case !ok:
		return false
	case w == s.Desc:
		c.Mem[s.PA] = d
	case swap64(w) == s.Desc:
		c.Mem[s.PA] = swap64(d)
	default:
		return false
	}
	return true
}

func cloneCase(c *qemu.Case) qemu.Case {
	t := *c
	t.Regs = maps.Clone(c.Regs)
	t.Mem = maps.Clone(c.Mem)
	return t
}

// clear64KOAHigh clears bits [15:12] of the 64KB-granule descriptors that
// operation i's walk reads (as the model walks it) and reports whether it
// changed any word.
func clear64KOAHigh(c *qemu.Case, i int) bool {
	m, err := atjson.Parse(bytes.NewReader(MarshalCase(c)))
	if err != nil {
		return false
	}
	var steps []vmsa.Step
	var res at.Result
	m.Run(func(j int, _ atjson.Op, r at.Result, tr *vmsa.Trace) {
		if j == i {
			steps = append(steps, tr.Steps...)
			res = r
		}
	})
	va := c.Ops[i].VA
	changed := false
	for _, s := range steps {
		if s.ReadFailed || s.Kind == desc.Invalid || s.Kind == desc.Reserved || s.Desc&0xf000 == 0 {
			continue
		}
		if granuleOf(c, res.Regime, s.Stage, va) != 3 {
			continue
		}
		w, ok := c.Mem[s.PA]
		switch {
		case !ok:
			continue
		case w == s.Desc:
			c.Mem[s.PA] = w &^ 0xf000
		case swap64(w) == s.Desc:
			c.Mem[s.PA] = swap64(s.Desc &^ 0xf000)
		default:
			continue
		}
		changed = true
	}
	return changed
}

// granuleOf returns the granule (1 4K, 2 16K, 3 64K) of a walk stage.
func granuleOf(c *qemu.Case, regime vmsa.Regime, stage uint8, va uint64) int {
	tg0 := func(v uint64) int { return [...]int{1, 3, 2, 0}[v>>14&3] }
	tg1 := func(v uint64) int { return [...]int{0, 2, 1, 3}[v>>30&3] }
	if stage == 2 {
		return tg0(c.Regs["VTCR_EL2"])
	}
	tcr := c.Regs["TCR_EL1"]
	if regime != vmsa.RegimeEL10 {
		tcr = c.Regs["TCR_EL2"]
	}
	if regime != vmsa.RegimeEL2 && va>>55&1 == 1 {
		return tg1(tcr)
	}
	return tg0(tcr)
}
