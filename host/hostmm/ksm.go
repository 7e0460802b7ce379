package hostmm

import (
	"sync"

	"github.com/nestmmu/nestmmu/mem"
)

// ksmState is the KSM daemon's state: the stable tree (here a map from
// content hash to KSM pages, each holding one reference for the tree) and
// the scan cursor.
type ksmState struct {
	mu     sync.Mutex
	stable map[uint64][]mem.PA
	cursor int
}

type ksmCand struct {
	b *backing
	i int
}

// KSMScan runs one pass of the KSM daemon over up to maxPages candidate
// pages (0: all) of mergeable regions, continuing where the last pass
// stopped, and returns how many mappings it replaced by a KSM page.
//
// For each candidate it first looks for an identical page in the stable
// tree; failing that, for an identical candidate seen earlier in the pass
// (the unstable tree), which it promotes to a KSM page. Every page is
// write-protected (Start, ChangePTE to the same frame, End) before its
// contents are compared, and replaced (Start, ChangePTE to the KSM page,
// End) only if they still match, as write_protect_page and replace_page do.
// A later write to the KSM page breaks copy-on-write.
func (k *Kernel) KSMScan(maxPages int) int {
	k.ksm.mu.Lock()
	defer k.ksm.mu.Unlock()
	k.ksmPrune()
	var cands []ksmCand
	for _, as := range *k.spaces.Load() {
		for _, v := range *as.vmas.Load() {
			if v.flags&MapMergeable == 0 || v.shm != nil {
				continue
			}
			for j := 0; j < v.b.npages; j++ {
				e := pte(v.b.ptes[j].Load())
				if e.present() && e&(pteHuge|pteKSM) == 0 {
					cands = append(cands, ksmCand{v.b, j})
				}
			}
		}
	}
	n := len(cands)
	if n == 0 {
		return 0
	}
	if maxPages <= 0 || maxPages > n {
		maxPages = n
	}
	start := k.ksm.cursor % n
	k.ksm.cursor = start + maxPages
	unstable := make(map[uint64]ksmCand)
	merged := 0
	for c := 0; c < maxPages; c++ {
		cd := cands[(start+c)%n]
		e := pte(cd.b.ptes[cd.i].Load())
		if !e.present() || e&(pteHuge|pteKSM) != 0 {
			continue
		}
		h := k.hashFrame(e.pa()) // a hint: verified after write-protect
		done := false
		for _, kpa := range k.ksm.stable[h] {
			if k.arena.Equal(e.pa(), kpa, k.pageSize) && k.ksmMerge(cd, kpa) {
				merged++
				done = true
				break
			}
		}
		if done {
			continue
		}
		if u, ok := unstable[h]; ok {
			if kpa, ok := k.ksmPromote(u, h); ok {
				delete(unstable, h)
				k.ksm.stable[h] = append(k.ksm.stable[h], kpa)
				if k.ksmMerge(cd, kpa) {
					merged++
				}
				continue
			}
		}
		unstable[h] = cd
	}
	k.ksmMerged.Add(uint64(merged))
	return merged
}

// pruneKSM drops the stable KSM pages the last mapping of which went (a
// munmap or process exit), so their frames are free at once rather than at
// the next scan.
func (k *Kernel) pruneKSM() {
	k.ksm.mu.Lock()
	k.ksmPrune()
	k.ksm.mu.Unlock()
}

// ksmPrune drops stable pages nobody maps any more. ksm.mu is held; only
// KSMScan adds references to a KSM page, so a count of 1 stays 1.
func (k *Kernel) ksmPrune() {
	for h, l := range k.ksm.stable {
		kept := l[:0]
		for _, kpa := range l {
			if k.arena.Ref(kpa) == 1 {
				k.arena.Put(kpa)
				continue
			}
			kept = append(kept, kpa)
		}
		if len(kept) == 0 {
			delete(k.ksm.stable, h)
		} else {
			k.ksm.stable[h] = kept
		}
	}
}

// hashFrame hashes a frame with atomic word loads (FNV-1a over words).
func (k *Kernel) hashFrame(pa mem.PA) uint64 {
	h := uint64(14695981039346656037)
	for off := uint64(0); off < k.pageSize; off += 8 {
		w, _ := k.arena.Read64(pa + mem.PA(off))
		h ^= w
		h *= 1099511628211
	}
	return h
}

// writeProtectLocked makes present entry e at i read-only, telling the
// secondary MMUs (write_protect_page). Locks held.
func (b *backing) writeProtectLocked(i int, e pte) pte {
	if e&pteWrite == 0 {
		return e
	}
	b.invalidateStart(i, i+1, EventClear)
	e &^= pteWrite | pteDirty
	b.ptes[i].Store(uint64(e))
	b.changePTE(i, e.pa())
	b.invalidateEnd(i, i+1, EventClear)
	return e
}

// ksmPromote turns candidate u into a KSM page if its contents still hash
// to h once write-protected, and returns it with the tree's reference.
func (k *Kernel) ksmPromote(u ksmCand, h uint64) (mem.PA, bool) {
	b := u.b
	b.lockPage(u.i)
	defer b.unlockPage(u.i)
	e := pte(b.ptes[u.i].Load())
	if !e.present() || e&(pteHuge|pteKSM) != 0 || b.dead.Load() {
		return 0, false
	}
	e = b.writeProtectLocked(u.i, e)
	if k.hashFrame(e.pa()) != h {
		return 0, false
	}
	b.ptes[u.i].Store(uint64(e | pteKSM)) // already read-only: no notifier
	k.arena.Get(e.pa())
	return e.pa(), true
}

// ksmMerge replaces candidate c's page by KSM page kpa if, once
// write-protected, its contents equal kpa's (replace_page).
func (k *Kernel) ksmMerge(c ksmCand, kpa mem.PA) bool {
	b := c.b
	b.lockPage(c.i)
	e := pte(b.ptes[c.i].Load())
	if !e.present() || e&(pteHuge|pteKSM) != 0 || b.dead.Load() {
		b.unlockPage(c.i)
		return false
	}
	e = b.writeProtectLocked(c.i, e)
	if !k.arena.Equal(e.pa(), kpa, k.pageSize) {
		b.unlockPage(c.i)
		return false
	}
	k.arena.Get(kpa)
	b.invalidateStart(c.i, c.i+1, EventClear)
	b.ptes[c.i].Store(uint64(mkPresent(kpa, pteKSM|e&pteYoung)))
	b.changePTE(c.i, kpa)
	b.invalidateEnd(c.i, c.i+1, EventClear)
	b.unlockPage(c.i)
	k.arena.Put(e.pa())
	return true
}
