package upstream

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the upstream health metrics. One set serves every Registry
// of a process, each labelled by its Options.MetricLabel: registries
// admitted by an allow pattern share one label, so the label values stay
// as few as the configuration's registries.
type Metrics struct {
	failingEndpoints *prometheus.GaugeVec
	probes           *prometheus.CounterVec
	recoveries       *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		failingEndpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pullcache_upstream_endpoints_failing",
			Help: "Upstream endpoints that could not be reached or failed (5xx) on their last request or probe, by registry."},
			[]string{"registry"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullcache_upstream_probes_total",
			Help: "Probes (GET /v2/) of failing upstream endpoints, by registry and result (answered, failed)."},
			[]string{"registry", "result"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullcache_upstream_recoveries_total",
			Help: "Upstream endpoints that answered again after failing, by registry."},
			[]string{"registry"}),
	}
	for _, c := range []prometheus.Collector{m.failingEndpoints, m.probes, m.recoveries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe creates label's series at zero, so that a dashboard sees every
// configured registry before anything fails.
func (m *Metrics) Observe(label string) {
	if m == nil {
		return
	}
	m.failingEndpoints.WithLabelValues(label)
	m.recoveries.WithLabelValues(label)
	m.probes.WithLabelValues(label, "answered")
	m.probes.WithLabelValues(label, "failed")
}

func (m *Metrics) failing(label string, delta float64) {
	if m != nil {
		m.failingEndpoints.WithLabelValues(label).Add(delta)
	}
}

func (m *Metrics) recovered(label string) {
	if m != nil {
		m.recoveries.WithLabelValues(label).Inc()
	}
}

func (m *Metrics) probed(label string, ok bool) {
	if m == nil {
		return
	}
	result := "failed"
	if ok {
		result = "answered"
	}
	m.probes.WithLabelValues(label, result).Inc()
}
