package cache

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
)

// eviction is the store's eviction, held in one field (Store.eviction):
// the state its passes share, and in order, the one place its policy
// lives: which images go first. A pass (evict.go) asks order for the
// candidates and takes them until it has freed what it needs.
type eviction struct {
	mu     sync.Mutex // one pass at a time
	guard  refGuard   // what manifests stored during a pass reference
	futile futilePass // the last pass that could free nothing
	totals evictionTotals
	// pinnedWarned is when pins over the bound were last logged.
	pinnedWarned atomic.Int64
}

// order is the eviction policy: the images a pass may evict, first to go
// first. Pinned images are never candidates; the others go least recently
// used first (an image's use is its own pulls, its children's and its
// referrers': graph.lastUsed), ties by digest so a pass is deterministic.
func (e *eviction) order(g *graph) []*mnode {
	type cand struct {
		n    *mnode
		last int64
	}
	cs := make([]cand, 0, len(g.roots))
	for _, r := range g.roots {
		if !g.pinned(r) {
			cs = append(cs, cand{r, g.lastUsed(r)})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if c := cmp.Compare(a.last, b.last); c != 0 {
			return c
		}
		return g.compareKeys(a.n.k, b.n.k)
	})
	out := make([]*mnode, len(cs))
	for i, c := range cs {
		out[i] = c.n
	}
	return out
}
