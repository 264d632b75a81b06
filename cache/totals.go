package cache

import "sync/atomic"

// EvictionTotals count what eviction passes freed since the store was
// opened: passes that ran (not dry runs), images evicted (by the bound
// or removed) and bytes freed, orphans swept included. The same figures
// are the pullcache_sweep_runs_total, pullcache_evictions_total and
// pullcache_evicted_bytes_total metrics.
type EvictionTotals struct {
	Passes int64 `json:"passes"`
	Images int64 `json:"images"`
	Freed  int64 `json:"freed"`
}

type evictionTotals struct{ passes, images, freed atomic.Int64 }

func (t *evictionTotals) add(rep GCReport) {
	t.passes.Add(1)
	t.images.Add(int64(rep.Evicted))
	t.freed.Add(rep.Freed)
}

// EvictionTotals reports what eviction freed since the store was opened.
func (s *Store) EvictionTotals() EvictionTotals {
	return EvictionTotals{Passes: s.eviction.totals.passes.Load(), Images: s.eviction.totals.images.Load(), Freed: s.eviction.totals.freed.Load()}
}
