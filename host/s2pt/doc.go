// Package s2pt is the host hypervisor's stage-2 page-table manager: the
// tables that translate a VM's intermediate physical addresses (IPAs) to
// host physical addresses, stored in host memory and walked by the modelled
// MMU (arm64/vmsa) while the manager changes them.
//
// NewLayout turns an IPA size, a granule and the ID registers into
// VTCR_EL2 and the root geometry (start level, concatenated root tables).
// A VM owns the root and every table below it. One generic range walker
// (VM.Walk) visits descriptors at leaves, before descending into a table
// and after leaving it; every operation (Map, Unmap, UnmapExact,
// WriteProtect, Relax, MkYoung, MkOld, TestYoung, Split, Collapse) is a
// small visitor over it, after one descent (entryOf) that Lookup and the
// one-leaf Map and Unmap use alone.
//
// Updates follow the architecture's rules for live tables: a valid entry
// whose output address or size changes goes through break-before-make
// (invalid, TLB invalidation through the Invalidator, new entry); permission
// restriction is followed by an invalidation; relaxation and Access-flag
// changes need none. Descriptors that hardware may update (AF, dirty state)
// are changed with compare-and-swap loops, or removed with a swap, so a
// hardware update is never lost; an invalid entry, which hardware never
// updates, is made valid with a store.
//
// Table pages come from a per-VM Cache filled by Topup before the MMU lock
// is taken ("prepare, then commit"): an operation checks up front that the
// cache holds the worst case it may need, so it never fails midway for lack
// of memory. Tables count their valid entries; a table an unmap empties is
// kept in place for the next map of its range (a bounded number,
// Config.KeepEmpty; Trim frees them) or freed; the root is freed only when
// the VM is destroyed.
package s2pt
