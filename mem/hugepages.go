package mem

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// AdviseHugePages asks the host kernel to back the 2 MiB-aligned part of
// b with transparent huge pages (madvise MADV_HUGEPAGE; a hint, best
// effort, errors ignored). For the simulator's own large tables read at
// random, where 4K host pages cost the real machine a TLB miss on most
// reads; it changes no modelled state.
func AdviseHugePages(b []byte) {
	const huge = 2 << 20
	if len(b) == 0 {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	start := uintptr(p)
	lo := (start + huge - 1) &^ (huge - 1)
	if hi := (start + uintptr(len(b))) &^ (huge - 1); hi > lo {
		_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, lo-start)), hi-lo), unix.MADV_HUGEPAGE)
	}
}
