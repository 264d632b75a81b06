package health

import "github.com/prometheus/client_golang/prometheus"

var (
	readyDesc = prometheus.NewDesc("pullcache_ready",
		"1 when /readyz answers 200 (ok or degraded), 0 when it answers 503.", nil, nil)
	checkDesc = prometheus.NewDesc("pullcache_readiness_check",
		"State of each readiness check: 0 ok, 1 degraded (still serving), 2 unready.", []string{"check"}, nil)
	inFlightDesc = prometheus.NewDesc("pullcache_requests_in_flight",
		"Requests being served (probes and scrapes not counted): what a shutdown drains.", nil, nil)
)

// collector runs the checks at scrape time, so the metrics say what
// /readyz would answer now, with no goroutine keeping them current.
type collector struct{ r *Readiness }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- readyDesc
	ch <- checkDesc
	ch <- inFlightDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	rep := c.r.Report()
	ready := 0.0
	if rep.Ready() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready)
	for _, res := range rep.Checks {
		ch <- prometheus.MustNewConstMetric(checkDesc, prometheus.GaugeValue, float64(res.State), res.Name)
	}
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(c.r.inFlight.count()))
}
