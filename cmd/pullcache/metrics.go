package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/stats"
	"github.com/pullcache/pullcache/upstream"
)

// Metrics read at scrape time from what serve already keeps: the
// statistics the console shows, the store's fills and disk, the
// upstreams' endpoint health. Computed on Collect, so nothing runs
// between scrapes and the figures cannot drift from the console's.
var (
	servedFromCacheDesc = prometheus.NewDesc("pullcache_served_from_cache_bytes_total",
		"Response body bytes served from the cache (hits and stale answers).", nil, nil)
	fetchedDesc = prometheus.NewDesc("pullcache_upstream_fetched_bytes_total",
		"Bytes read from upstream registries (manifests and blobs, prefetch included).", nil, nil)
	clientGetsDesc = prometheus.NewDesc("pullcache_client_gets_total",
		"Manifest and blob GETs clients sent, by kind.", []string{"kind"}, nil)
	getsFromCacheDesc = prometheus.NewDesc("pullcache_gets_from_cache_total",
		"Manifest and blob GETs answered from the cache, by kind: GETs that did not go upstream (Docker Hub's pull limit counts manifest GETs).", []string{"kind"}, nil)
	upstreamGetsDesc = prometheus.NewDesc("pullcache_upstream_gets_total",
		"Manifest and blob GETs sent upstream, by kind (prefetch included).", []string{"kind"}, nil)
	upstreamHeadsDesc = prometheus.NewDesc("pullcache_upstream_heads_total",
		"HEADs sent upstream (tag revalidations; Docker Hub does not count them).", nil, nil)
	fillsDesc = prometheus.NewDesc("pullcache_fills_in_flight",
		"Blob fills from upstreams in progress.", nil, nil)
	diskFreeDesc = prometheus.NewDesc("pullcache_disk_free_bytes",
		"Free space on the data directory's filesystem.", nil, nil)
	minFreeDesc = prometheus.NewDesc("pullcache_disk_min_free_bytes",
		"Free space fills must leave (min_free, or the index's headroom if larger).", nil, nil)
	endpointUpDesc = prometheus.NewDesc("pullcache_upstream_endpoint_up",
		"1 while an upstream endpoint answers, 0 while it is failing (until a request or a probe sees it answer). Registries admitted by an allow pattern share registry=\"allowed\", endpoint=\"allowed\": 0 if any of them fails.",
		[]string{"registry", "endpoint"}, nil)
)

// serveCollector exports what serve keeps as metrics.
type serveCollector struct {
	stats      *stats.Recorder
	store      *cache.Store
	obs        *observers
	configured map[string]bool // registries with their own labels
}

func newServeCollector(st *stats.Recorder, store *cache.Store, obs *observers, registries []string) *serveCollector {
	configured := map[string]bool{}
	for _, r := range registries {
		configured[r] = true
	}
	return &serveCollector{stats: st, store: store, obs: obs, configured: configured}
}

func (c *serveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{servedFromCacheDesc, fetchedDesc, clientGetsDesc, getsFromCacheDesc,
		upstreamGetsDesc, upstreamHeadsDesc, fillsDesc, diskFreeDesc, minFreeDesc, endpointUpDesc} {
		ch <- d
	}
}

func (c *serveCollector) Collect(ch chan<- prometheus.Metric) {
	c.collectStats(ch)
	ch <- prometheus.MustNewConstMetric(fillsDesc, prometheus.GaugeValue, float64(len(c.store.Fills())))
	st := c.store.State()
	if st.Free >= 0 {
		ch <- prometheus.MustNewConstMetric(diskFreeDesc, prometheus.GaugeValue, float64(st.Free))
	}
	ch <- prometheus.MustNewConstMetric(minFreeDesc, prometheus.GaugeValue, float64(st.MinFree))
	for key, up := range endpointsUp(c.obs.statuses(), c.configured) {
		ch <- prometheus.MustNewConstMetric(endpointUpDesc, prometheus.GaugeValue, up, key.registry, key.endpoint)
	}
}

func (c *serveCollector) collectStats(ch chan<- prometheus.Metric) {
	t := c.stats.Totals()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(servedFromCacheDesc, t.BytesFromCache)
	counter(fetchedDesc, t.BytesFetched)
	counter(clientGetsDesc, t.ManifestGets, "manifest")
	counter(clientGetsDesc, t.BlobGets, "blob")
	counter(getsFromCacheDesc, t.ManifestGetsFromCache, "manifest")
	counter(getsFromCacheDesc, t.BlobGetsFromCache, "blob")
	counter(upstreamGetsDesc, t.UpstreamManifestGets, "manifest")
	counter(upstreamGetsDesc, t.UpstreamBlobGets, "blob")
	counter(upstreamHeadsDesc, t.UpstreamHeads)
}

type endpointKey struct{ registry, endpoint string }

// endpointsUp is 1 or 0 per endpoint of the configured registries; the
// registries an allow pattern admitted (any number of them) share one
// series, so the labels stay bounded.
func endpointsUp(sts []upstream.Status, configured map[string]bool) map[endpointKey]float64 {
	out := map[endpointKey]float64{}
	allowed := endpointKey{"allowed", "allowed"}
	for _, st := range sts {
		for _, ep := range st.Endpoints {
			up := 1.0
			if ep.State == upstream.StateFailing {
				up = 0
			}
			key := endpointKey{st.Registry, ep.Host}
			if !configured[st.Registry] {
				key = allowed
				if v, seen := out[key]; seen {
					up = min(up, v)
				}
			}
			out[key] = up
		}
	}
	return out
}
