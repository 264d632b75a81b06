package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// State is whether an endpoint answers.
type State int

const (
	// StateUnknown: not asked since the start.
	StateUnknown State = iota
	// StateUp: its last request or probe got an answer, any answer (a 401
	// or a 404 included).
	StateUp
	// StateFailing: it could not be reached, timed out or failed (5xx);
	// it is probed until it answers again.
	StateFailing
)

func (s State) String() string { return [...]string{"unknown", "up", "failing"}[s] }

// MarshalText writes the state's name (for JSON).
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// endpointCooldown is how long an endpoint that failed is tried last.
const endpointCooldown = 30 * time.Second

// DefaultProbeInterval is how often a failing endpoint's /v2/ is asked
// whether it answers again. It is also the shortest time a failure to
// reach a registry is remembered, so that a registry that answers other
// requests while one keeps failing still sees that one at most once per
// interval.
const DefaultProbeInterval = 2 * time.Second

// ProbeUserAgent is the User-Agent of probes, so that a registry's
// operator can tell them from pulls.
const ProbeUserAgent = "pullcache-probe"

// probeTimeout bounds one probe; none starts while one runs.
const probeTimeout = 10 * time.Second

// health is what an endpoint last did: the order endpoints are tried in,
// the console's upstream health, and when failures of its registry are
// over.
type health struct {
	mu        sync.Mutex
	state     State
	downUntil time.Time
	since     time.Time // when state was entered
	lastOK    time.Time
	lastErrAt time.Time
	lastErr   string
	probing   bool
	lastProbe time.Time
}

func (h *health) down() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Now().Before(h.downUntil)
}

// set records an answer (err nil) or a failure to answer, and returns the
// state before and for how long it had lasted.
func (h *health) set(err error) (was State, lasted time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	was, lasted = h.state, now.Sub(h.since)
	if err != nil {
		h.state = StateFailing
		h.downUntil = now.Add(endpointCooldown)
		h.lastErrAt, h.lastErr = now, err.Error()
	} else {
		h.state = StateUp
		h.downUntil = time.Time{}
		h.lastOK = now
	}
	if h.state != was {
		h.since = now
	}
	return was, lasted
}

// claimProbe reports whether a probe is due now (the endpoint is failing,
// no probe runs and the last one started at least every ago), and if so
// marks one as running.
func (h *health) claimProbe(now time.Time, every time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != StateFailing || h.probing || now.Sub(h.lastProbe) < every {
		return false
	}
	h.probing, h.lastProbe = true, now
	return true
}

func (h *health) probed() {
	h.mu.Lock()
	h.probing = false
	h.mu.Unlock()
}

func (h *health) answeredAfter(t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastOK.After(t)
}

func (h *health) current() State {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// note records what ep did, and says when it starts or stops failing.
func (r *Registry) note(ep *endpoint, err error) {
	was, lasted := ep.health.set(err)
	switch {
	case err != nil && was != StateFailing:
		r.metrics.failing(r.label, 1)
		r.log.Warn("upstream endpoint failing; it is probed until it answers", "registry", r.name, "endpoint", ep.host,
			"probe_every", r.probeEvery, "err", err)
	case err == nil && was == StateFailing:
		r.metrics.failing(r.label, -1)
		r.metrics.recovered(r.label)
		r.log.Info("upstream endpoint answers again", "registry", r.name, "endpoint", ep.host, "failed_for", lasted.Round(time.Millisecond))
	}
}

// answered reports whether err is the registry's own answer (a status
// below 500, or content it sent that is unusable), not a failure to
// answer: any answer says the registry is there.
func answered(err error) bool {
	code := statusOf(err)
	return (code > 0 && code < 500) || isInvalid(err)
}

// answeredSince reports whether any endpoint answered after at, no sooner
// than a probe interval after it. Asking kicks the probes that are due.
func (r *Registry) answeredSince(at time.Time) bool {
	now := time.Now()
	r.kickProbes(now)
	if now.Before(at.Add(r.probeEvery)) {
		return false
	}
	for _, ep := range r.endpoints {
		if ep.health.answeredAfter(at) {
			return true
		}
	}
	return false
}

// Health is the state of each endpoint, by host[:port]. Asking kicks the
// probes that are due, so that a poller (readiness) sees a recovery even
// when no request comes.
func (r *Registry) Health() map[string]State {
	r.kickProbes(time.Now())
	out := make(map[string]State, len(r.endpoints))
	for _, ep := range r.endpoints {
		out[ep.host] = ep.health.current()
	}
	return out
}

// kickProbes starts a probe of each failing endpoint whose probe is due.
// Probes are asked for, not timed: a registry nobody asks about is not
// probed, and no goroutine outlives its probe.
func (r *Registry) kickProbes(now time.Time) {
	for _, ep := range r.endpoints {
		if ep.health.claimProbe(now, r.probeEvery) {
			go r.probe(ep)
		}
	}
}

func (r *Registry) probe(ep *endpoint) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	err := r.ping(ctx, ep)
	ep.health.probed()
	r.metrics.probed(r.label, err == nil)
	r.note(ep, err)
}

// ping asks ep's /v2/ without credentials: any answer below 500, a 401
// included, says the registry is there. It goes through the base
// transport, so a registry not on the LAN is refused private addresses
// as its requests are.
func (r *Registry) ping(ctx context.Context, ep *endpoint) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.scheme+"://"+ep.host+"/v2/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", ProbeUserAgent)
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("probe GET /v2/: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= http.StatusInternalServerError {
		return fmt.Errorf("probe GET /v2/: %s", resp.Status)
	}
	return nil
}

// Over reports whether the cause of this failure has passed, so that what
// remembers it (the cache's failed fills, the proxy's remembered answers)
// forgets it and the next request asks again: for a registry that could
// not be reached or failed, that it answered since (a probe or another
// request), no sooner than a probe interval after the failure; for a 429,
// that its Retry-After has passed. Other failures (a 404, a refusal,
// bytes that do not match) are never over by themselves.
func (e *Error) Over() bool {
	if e.reg == nil {
		return false
	}
	switch e.Kind {
	case Unavailable:
		return e.reg.answeredSince(e.at)
	case TooManyRequests:
		return e.RetryAfter > 0 && !time.Now().Before(e.at.Add(max(e.RetryAfter, e.reg.probeEvery)))
	}
	return false
}
