package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/health"
	"github.com/pullcache/pullcache/upstream"
)

// newReadiness is /readyz with the states of the store and the upstreams
// wired in as checks: each is degraded (named, still ready), never
// unready, since a mirror with a full disk or a failing upstream still
// serves what it has.
func newReadiness(store *cache.Store, obs *observers, reg prometheus.Registerer) (*health.Readiness, error) {
	ready, err := health.New(reg)
	if err != nil {
		return nil, err
	}
	// The image graph is read in the background at start-up: until it is,
	// the store cannot answer what it holds.
	ready.LoadingWhile(store.Loading)
	ready.Add("index", func() (health.State, string) { return indexState(store.State()) })
	ready.Add("disk", func() (health.State, string) { return diskState(store.State()) })
	ready.Add("upstream", func() (health.State, string) { return upstreamState(obs.statuses()) })
	return ready, nil
}

func indexState(st cache.State) (health.State, string) {
	switch {
	case st.ReadOnly:
		return health.Degraded, "the index is read-only: the disk is too full to write it; cached content is served, nothing new is cached"
	case st.Scanning:
		return health.Degraded, "counting the cached blobs at start-up: cached content is served, cold fills wait for the count"
	}
	return health.OK, ""
}

func diskState(st cache.State) (health.State, string) {
	if st.Free >= 0 && st.Free < st.MinFree {
		return health.Degraded, fmt.Sprintf("disk full: %s free, below min_free %s, and nothing more can be evicted; new content is refused",
			humanBytes(st.Free), humanBytes(st.MinFree))
	}
	return health.OK, ""
}

// upstreamState is degraded while any endpoint is failing (it failed to
// answer, and no probe has seen it answer since); the reason names at
// most three of them.
func upstreamState(sts []upstream.Status) (health.State, string) {
	var failing []string
	for _, st := range sts {
		for _, ep := range st.Endpoints {
			if ep.State == upstream.StateFailing {
				failing = append(failing, fmt.Sprintf("%s (%s) failing since %s: %s",
					st.Registry, ep.Host, ep.LastErrorAt.UTC().Format(time.RFC3339), ep.LastError))
			}
		}
	}
	if len(failing) == 0 {
		return health.OK, ""
	}
	if n := len(failing); n > 3 {
		failing = append(failing[:3], fmt.Sprintf("and %d more", n-3))
	}
	return health.Degraded, strings.Join(failing, "; ")
}

// isProbe tells the requests a drain does not wait for: probes and
// scrapes, which come on their own schedule and carry no transfer.
func isProbe(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}

// statuses are the endpoint states of every registry built so far.
func (o *observers) statuses() []upstream.Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]upstream.Status, 0, len(o.regs))
	for _, r := range o.regs {
		out = append(out, r.Status())
	}
	return out
}
