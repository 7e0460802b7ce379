package s2pt

import (
	"fmt"
	"sync"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// Config describes a VM's stage-2 address space: the IPA size and granule
// the VMM asked for, the output size, and the implementation's ID registers
// that decide what is allowed.
type Config struct {
	// IPABits is the IPA size: 32 to 48, or 52 where the ID registers
	// allow it (FEAT_LPA2 for 4K/16K with a 52-bit PARange, FEAT_LPA for
	// 64K).
	IPABits uint
	// Granule is the stage-2 translation granule.
	Granule sysreg.Granule
	// PABits is the output address size written to VTCR_EL2.PS: one of
	// 32, 36, 40, 42, 44, 48, 52. Zero means the implementation's PARange,
	// capped at 48 bits for 4K/16K unless the IPA is 52 bits (52-bit
	// output there needs DS=1).
	PABits uint
	// MMFR0 and MMFR1 are ID_AA64MMFR0_EL1 and ID_AA64MMFR1_EL1.
	MMFR0 sysreg.MMFR0
	MMFR1 sysreg.MMFR1
	// HA and HD request hardware Access flag and dirty-state updates
	// (VTCR_EL2.HA/HD); refused when ID_AA64MMFR1_EL1.HAFDBS lacks them.
	HA, HD bool
	// MaxConcat is the largest number of concatenated start-level tables
	// allowed (a power of two, 1 to 16). Zero means 16, as KVM does: a
	// concatenated root instead of one more level.
	MaxConcat int
	// MMULock, when set, is the hypervisor's MMU lock: the one lock that
	// guards these tables (and whatever else the hypervisor keeps with
	// them), held by the caller around every VM method, which then takes
	// no lock of its own. Nil: each method takes a lock of the VM's own.
	MMULock *sync.Mutex
	// KeepEmpty is how many tables an unmap empties stay in place, empty,
	// for the next map of their range (their table descriptors valid):
	// the mapping then installs no table and the unmap frees none. The
	// newest are kept; one displaced is freed. They (and the tables above
	// them that they alone hold) count in Stats.Tables and TableBytes
	// (Stats.EmptyTables); Trim frees them. Zero means 1; negative keeps
	// none, so that every emptied table is detached and freed at once, as
	// KVM does.
	KeepEmpty int
}

// Layout is what a Config resolves to: the stage-2 control register value,
// the start level and the size of the (possibly concatenated) root.
type Layout struct {
	VTCR sysreg.VTCR
	// Format is the descriptor layout (DS, 64K OA[51:48]).
	Format desc.Format
	// StartLevel is the level of the root (-1..2).
	StartLevel int
	// RootEntries is the number of descriptors the root holds.
	RootEntries uint64
	// RootTables is the number of granule-sized tables concatenated to
	// form the root (1 when the root is a single, maybe partial, table).
	RootTables int
	// RootBytes is the size and alignment of the root allocation.
	RootBytes uint64
	// TableBytes is the size of every non-root table (the granule).
	TableBytes uint64
	IPABits    uint
	PABits     uint
	// PAMax is the implementation's physical address size (PARange).
	PAMax uint
	// VS selects 16-bit VMIDs.
	VS bool
}

// stage2Granule reports ID_AA64MMFR0_EL1.TGran*_2 support for g.
func stage2Granule(m sysreg.MMFR0, g sysreg.Granule) bool { return m.GranuleSupported(g, true) }

// stage2LPA2 reports FEAT_LPA2 at stage 2 for the 4K and 16K granules.
func stage2LPA2(m sysreg.MMFR0, g sysreg.Granule) bool { return m.GranuleLPA2(g, true) }

// NewLayout derives VTCR_EL2 and the root geometry from cfg. The start level
// is the lowest-numbered-levels choice: the fewest levels whose root needs
// at most cfg.MaxConcat concatenated tables (e.g. 4K granule, 40-bit IPA:
// level 1 with 2 tables; 48-bit: level 0), but never fewer than two levels.
func NewLayout(cfg Config) (Layout, error) {
	var l Layout
	g := cfg.Granule
	gb := g.Bits()
	if gb == 0 {
		return l, fmt.Errorf("s2pt: granule %d is not a translation granule", cfg.Granule)
	}
	if !stage2Granule(cfg.MMFR0, g) {
		return l, fmt.Errorf("s2pt: the %v granule is not implemented at stage 2 (ID_AA64MMFR0_EL1 %#x)", g, uint64(cfg.MMFR0))
	}
	paMax, ok := sysreg.PASizeBits(cfg.MMFR0.PARange())
	if !ok {
		return l, fmt.Errorf("s2pt: reserved ID_AA64MMFR0_EL1.PARange %d", cfg.MMFR0.PARange())
	}
	lpa2 := stage2LPA2(cfg.MMFR0, g)
	// AArch64.S2MinTxSZ / AArch64.PhysicalAddressSize: 52 bits need
	// FEAT_LPA with 64K, FEAT_LPA2 (DS=1) with 4K/16K.
	max52 := paMax >= 52 && (g == sysreg.Granule64K || lpa2)
	limit := min(paMax, 48)
	if max52 {
		limit = 52
	}
	ia := cfg.IPABits
	if ia < 32 || ia > 52 {
		return l, fmt.Errorf("s2pt: IPA size %d bits is outside 32..52", ia)
	}
	if ia > limit {
		return l, fmt.Errorf("s2pt: IPA size %d bits exceeds the %d bits this implementation allows with the %v granule (PARange %d bits, LPA2 %v)", ia, limit, g, paMax, lpa2)
	}
	pa := cfg.PABits
	if pa == 0 {
		// The implementation's size; 52 bits with 4K/16K only when the IPA
		// needs DS=1 anyway, since DS moves the shareability out of the
		// descriptors.
		pa = limit
		if g != sysreg.Granule64K && ia <= 48 {
			pa = min(pa, 48)
		}
	}
	psEnc, ok := sysreg.PSFor(pa)
	if !ok {
		return l, fmt.Errorf("s2pt: PA size %d bits is not a VTCR_EL2.PS size", pa)
	}
	if pa > limit {
		return l, fmt.Errorf("s2pt: PA size %d bits exceeds the %d bits this implementation allows with the %v granule", pa, limit, g)
	}
	maxConcat := cfg.MaxConcat
	if maxConcat == 0 {
		maxConcat = 16
	}
	if maxConcat < 1 || maxConcat > 16 || maxConcat&(maxConcat-1) != 0 {
		return l, fmt.Errorf("s2pt: MaxConcat %d is not a power of two in 1..16", maxConcat)
	}
	concatBits := uint(0)
	for 1<<concatBits < maxConcat {
		concatBits++
	}
	ds := g != sysreg.Granule64K && (ia > 48 || pa > 48)
	stride := gb - 3
	// below is the number of levels under the start level; the start
	// level's index takes the remaining IPA bits (AArch64.S2InconsistentSL
	// allows up to stride+4 of them: 16 concatenated tables).
	below := uint(1)
	for ia-gb-stride*below > stride+concatBits {
		below++
	}
	start := 3 - int(below)
	idxBits := ia - gb - stride*below
	var sl0 uint64
	sl2 := false
	// SL0 encodings and AArch64.S2InvalidSL.
	switch g {
	case sysreg.Granule4K:
		switch start {
		case 2:
			sl0 = 0
		case 1:
			sl0 = 1
		case 0:
			sl0 = 2
			if paMax < 44 {
				return l, fmt.Errorf("s2pt: a %d-bit IPA needs stage 2 to start at level 0, which PARange %d bits does not allow", ia, paMax)
			}
		case -1:
			if !ds || paMax < 52 {
				return l, fmt.Errorf("s2pt: a %d-bit IPA with at most %d concatenated tables needs level -1 (SL2), which needs FEAT_LPA2 and 52-bit PA", ia, maxConcat)
			}
			sl0, sl2 = 0, true
		}
	case sysreg.Granule16K:
		sl0 = uint64(3 - start)
		if start == 0 && (!ds || paMax < 52) {
			return l, fmt.Errorf("s2pt: a %d-bit IPA with the 16K granule needs level 0, which needs FEAT_LPA2 and 52-bit PA", ia)
		}
		if start == 1 && paMax < 42 {
			return l, fmt.Errorf("s2pt: the 16K granule cannot start at level 1 with PARange %d bits", paMax)
		}
	case sysreg.Granule64K:
		sl0 = uint64(3 - start)
		if start < 1 {
			return l, fmt.Errorf("s2pt: the 64K granule cannot start at level %d", start)
		}
		if start == 1 && paMax < 44 {
			return l, fmt.Errorf("s2pt: the 64K granule cannot start at level 1 with PARange %d bits", paMax)
		}
	}
	if ds && !lpa2 {
		return l, fmt.Errorf("s2pt: %d-bit IPA / %d-bit PA with the %v granule needs FEAT_LPA2 (VTCR_EL2.DS)", ia, pa, g)
	}
	if cfg.HA && cfg.MMFR1.HAFDBS() < 1 {
		return l, fmt.Errorf("s2pt: VTCR_EL2.HA requested but ID_AA64MMFR1_EL1.HAFDBS is %d", cfg.MMFR1.HAFDBS())
	}
	if cfg.HD && (cfg.MMFR1.HAFDBS() < 2 || !cfg.HA) {
		return l, fmt.Errorf("s2pt: VTCR_EL2.HD requested with HA=%v and ID_AA64MMFR1_EL1.HAFDBS %d (needs HA and HAFDBS>=2)", cfg.HA, cfg.MMFR1.HAFDBS())
	}
	vs := cfg.MMFR1.VMIDBits() == 2
	vtcr := sysreg.VTCRFields{
		T0SZ: sysreg.TxSZ(ia), SL0: uint(sl0), SL2: sl2, TG0: g, PS: psEnc, DS: ds,
		IRGN0: sysreg.RGNWBWA, ORGN0: sysreg.RGNWBWA, SH0: sysreg.SHInner, // the walks' own accesses
		VS: vs, HA: cfg.HA, HD: cfg.HD,
	}.Value()
	l = Layout{
		VTCR:        vtcr,
		Format:      desc.Format{Granule: g, DS: ds, OA52: g == sysreg.Granule64K && paMax >= 52},
		StartLevel:  start,
		RootEntries: 1 << idxBits,
		TableBytes:  1 << gb,
		IPABits:     ia,
		PABits:      pa,
		PAMax:       paMax,
		VS:          vs,
	}
	l.RootBytes = max(l.TableBytes, l.RootEntries*8)
	l.RootTables = int(l.RootBytes / l.TableBytes)
	return l, nil
}

// entries returns the number of descriptors in a non-root table.
func (l *Layout) entries() uint64 { return l.TableBytes / 8 }

// leafBits is log2 of the IPA range one descriptor at level covers.
func (l *Layout) leafBits(level int) uint { return l.Format.LeafBits(level) }

// BlockLevel reports whether a block descriptor is allowed at level
// (AArch64.BlockDescSupported), level 3 pages excluded.
func (l *Layout) BlockLevel(level int) bool {
	switch l.Format.Granule {
	case sysreg.Granule4K:
		return level == 1 || level == 2 || (level == 0 && l.Format.DS)
	case sysreg.Granule16K:
		return level == 2 || (level == 1 && l.Format.DS)
	case sysreg.Granule64K:
		return level == 2 || (level == 1 && l.PAMax >= 52)
	}
	return false
}

// BlockSizes returns the block sizes the layout may map, largest first,
// restricted to levels at or below the start level.
func (l *Layout) BlockSizes() []uint64 {
	var s []uint64
	for lvl := l.StartLevel; lvl < 3; lvl++ {
		if l.BlockLevel(lvl) {
			s = append(s, 1<<l.leafBits(lvl))
		}
	}
	return s
}
