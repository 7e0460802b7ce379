package nested

import (
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
)

// emulateTLBI executes a TLBI the guest hypervisor issued at vEL2 (trapped
// by HCR_EL2.NV, or TTLB* for the EL1 forms) on what L0 keeps for it, in
// the context of its virtual registers (its VMID, HCR_EL2, VTCR_EL2):
//   - ALLE1: every shadow is emptied; VMALLS12E1: the shadows of the
//     current guest VMID.
//   - IPAS2E1, IPAS2LE1: in each shadow of the VMID (guest stage 2 on), the
//     range the TTL hint gives when it names the guest's granule, else the
//     guest leaf the shadow remembers for the IPA, else the granule's
//     largest block; the range forms RIPAS2E1/RIPAS2LE1 their range.
//     Whole shadow leaves go, and their TLB entries with them.
//   - the EL1 stage-1 forms (VMALLE1, VAE1, ASIDE1, ... and the range
//     forms): executed in each matching shadow's VMID (or, with the
//     guest's HCR_EL2.{E2H,TGE}={1,1}, in the VMID of the guest
//     hypervisor's own regime).
//   - the EL2 forms (ALLE2, VAE2, VALE2, RVAE2, RVALE2): the guest
//     hypervisor's own regime runs on the EL1&0 regime with L0's VMID for
//     its VM: every stage-1 entry of that VMID goes (conservative).
func (v *VCPU) emulateTLBI(op tlb.Op, xt uint64) error {
	g := v.guestRegs()
	gvmid := guestVMID(&g)
	// The guest's TCR_EL1 (in the VNCR page layout) sizes the ASIDs of
	// the EL1 forms.
	s, ctx, err := guestTLBI(op, xt, &g, sysreg.TCR(v.vncrGet(offTCR1)))
	if err != nil {
		return err
	}
	vm := v.vm
	host := vm.k.Host()
	own := vm.k.VMID()
	el1 := tlb.Context{EL: 2, VMID: own}
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	if done, err := vm.pool.tlbiStage2(op, &s, &g); done {
		return err
	}
	switch op.Base() {
	case tlb.OpALLE2, tlb.OpVAE2, tlb.OpVALE2, tlb.OpRVAE2, tlb.OpRVALE2:
		return host.TLBI(tlb.OpVMALLE1, 0, el1)
	}
	// The EL1 stage-1 forms.
	if g.hcr.E2H() && g.hcr.TGE() {
		return host.TLBI(op.Base(), xt, el1)
	}
	for _, sh := range vm.pool.shadows {
		if sh.s2 != nil && sh.gvmid == gvmid {
			c := tlb.Context{EL: 2, VMID: host.VMIDOf(&sh.x.vmid), ASID16: ctx.ASID16}
			if err := host.TLBI(op.Base(), xt, c); err != nil {
				return err
			}
		}
	}
	return nil
}
