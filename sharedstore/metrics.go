package sharedstore

import "github.com/prometheus/client_golang/prometheus"

// metrics count what the bucket answered and what became of the writes.
// Labels take fixed values only.
type metrics struct {
	reads  *prometheus.CounterVec
	writes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_shared_reads_total",
			Help: "Blob and manifest-by-digest requests asked of the shared bucket, by kind and outcome (hit: served through a link; confirmed: served after the upstream confirmed the repository has it; miss: not there; denied: there, but the upstream would not confirm it; error: the bucket failed; skipped: not asked, the bucket failed in the last 10 s).",
		}, []string{"kind", "outcome"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_shared_writes_total",
			Help: "Blobs and manifests fetched from the upstream and stored in the shared bucket, by kind and outcome (stored, exists, abandoned: the client stopped early or the upstream failed; slow: the bucket fell behind the stream; failed: the bucket refused or failed).",
		}, []string{"kind", "outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.reads, m.writes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) read(kind, outcome string)  { m.reads.WithLabelValues(kind, outcome).Inc() }
func (m *metrics) wrote(kind, outcome string) { m.writes.WithLabelValues(kind, outcome).Inc() }
