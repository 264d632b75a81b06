package cluster

import "github.com/prometheus/client_golang/prometheus"

// metrics are the cluster's figures. Their member labels take the values
// of the current members only: a member removed is forgotten, so the
// label values stay bounded by the cluster's size.
type metrics struct {
	peerFetches *prometheus.CounterVec
	peerBytes   *prometheus.CounterVec
	takeovers   *prometheus.CounterVec
	peerServed  *prometheus.CounterVec
	memberUp    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		peerFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_cluster_peer_fetches_total",
			Help: "Requests this member sent to another member for a blob or a manifest, by member, kind and outcome (ok, not_found, refused, unreachable).",
		}, []string{"member", "kind", "outcome"}),
		peerBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_cluster_peer_bytes_total",
			Help: "Blob bytes this member received from another member.",
		}, []string{"member"}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_cluster_takeovers_total",
			Help: "Blob streams from a member that failed mid-way and were resumed, by where they resumed (self: from the upstream; peer: from the next member).",
		}, []string{"to"}),
		peerServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_cluster_peer_requests_total",
			Help: "Requests from other members answered here, by outcome (served, refused).",
		}, []string{"outcome"}),
		memberUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pullcache_cluster_member_up",
			Help: "1 when this member thinks the member alive (it owns its share), 0 when not.",
		}, []string{"member"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.peerFetches, m.peerBytes, m.takeovers, m.peerServed, m.memberUp} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// forget drops a removed member's series.
func (m *metrics) forget(member string) {
	l := prometheus.Labels{"member": member}
	m.peerFetches.DeletePartialMatch(l)
	m.peerBytes.DeletePartialMatch(l)
	m.memberUp.DeletePartialMatch(l)
}
