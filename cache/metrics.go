package cache

import (
	"github.com/prometheus/client_golang/prometheus"
)

// storeMetrics are the store's Prometheus metrics.
type storeMetrics struct {
	bytes     *prometheus.GaugeVec
	bound     prometheus.Gauge
	pinned    prometheus.Gauge
	evictions prometheus.Counter
	freed     prometheus.Counter
	passes    prometheus.Counter
	refused   prometheus.Counter
	readOnly  prometheus.Gauge
	idxRefuse prometheus.Counter
	verify    *prometheus.GaugeVec
	// fillFailures counts fills that failed, by cause (local, mismatch,
	// source): a full disk is the operator's to fix, not the upstream's.
	fillFailures *prometheus.CounterVec
}

func newStoreMetrics(reg prometheus.Registerer, bound int64) *storeMetrics {
	m := &storeMetrics{
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pullcache_cache_bytes",
			Help: "Disk space the cache occupies, allocated blocks, by category (blobs, index, tmp)."}, []string{"category"}),
		bound: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pullcache_cache_bound_bytes",
			Help: "The size bound (max_size); 0 when only min_free bounds the cache."}),
		pinned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pullcache_cache_pinned_bytes",
			Help: "Disk space of pinned images, as of the last eviction pass."}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "pullcache_evictions_total",
			Help: "Images evicted."}),
		freed: prometheus.NewCounter(prometheus.CounterOpts{Name: "pullcache_evicted_bytes_total",
			Help: "Bytes freed by eviction and sweeps."}),
		passes: prometheus.NewCounter(prometheus.CounterOpts{Name: "pullcache_sweep_runs_total",
			Help: "Eviction and sweep passes run."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "pullcache_writes_refused_total",
			Help: "Fills and imports refused because no room could be made."}),
		readOnly: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pullcache_index_read_only",
			Help: "1 while the disk is too full to write the index (reads go on, nothing new is cached)."}),
		idxRefuse: prometheus.NewCounter(prometheus.CounterOpts{Name: "pullcache_index_writes_refused_total",
			Help: "Index writes refused because the disk was too full."}),
		verify: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pullcache_verify_problems",
			Help: "Problems the last verify found, by kind."}, []string{"kind"}),
		fillFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullcache_fill_failures_total",
			Help: "Blob fills that failed, by cause: local (the mirror's disk or size bound), mismatch (bytes that did not match their digest or size), source (the upstream failed or broke off)."},
			[]string{"cause"}),
	}
	m.bound.Set(float64(bound))
	for _, cause := range []string{"local", "mismatch", "source"} {
		m.fillFailures.WithLabelValues(cause)
	}
	if reg != nil {
		reg.MustRegister(m.bytes, m.bound, m.pinned, m.evictions, m.freed, m.passes, m.refused, m.readOnly, m.idxRefuse, m.verify, m.fillFailures)
	}
	return m
}

func (m *storeMetrics) observe(u Usage, readOnly bool) {
	m.bytes.WithLabelValues("blobs").Set(float64(u.Blobs))
	m.bytes.WithLabelValues("index").Set(float64(u.Index))
	m.bytes.WithLabelValues("tmp").Set(float64(u.Tmp))
	if readOnly {
		m.readOnly.Set(1)
	} else {
		m.readOnly.Set(0)
	}
}
