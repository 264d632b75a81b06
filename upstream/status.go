package upstream

import "time"

// EndpointStatus is what one endpoint of a registry last did.
type EndpointStatus struct {
	// Host is the endpoint's host[:port].
	Host string
	// State says whether it answers.
	State State
	// DownUntil, when in the future, is when the endpoint stops being tried
	// last (it failed to answer; the others are tried first).
	DownUntil time.Time
	// LastOK is when it last answered; zero if never since start.
	LastOK time.Time
	// LastError and LastErrorAt are its last failure to answer.
	LastError   string
	LastErrorAt time.Time
}

// Status is the health of a registry's endpoints, in configured order.
type Status struct {
	Registry  string
	Endpoints []EndpointStatus
}

// Status reports what each endpoint last did. Asking kicks the probes
// that are due, so that a poller (the console, readiness) sees a recovery
// even when no request comes.
func (r *Registry) Status() Status {
	r.kickProbes(time.Now())
	st := Status{Registry: r.name}
	for _, ep := range r.endpoints {
		ep.health.mu.Lock()
		st.Endpoints = append(st.Endpoints, EndpointStatus{Host: ep.host, State: ep.health.state, DownUntil: ep.health.downUntil,
			LastOK: ep.health.lastOK, LastError: ep.health.lastErr, LastErrorAt: ep.health.lastErrAt})
		ep.health.mu.Unlock()
	}
	return st
}
