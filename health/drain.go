package health

import (
	"context"
	"net/http"
	"sync"
)

// inFlight counts the requests being served.
type inFlight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // a token sent when n drops to 0
}

func (f *inFlight) add(d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n += d
	if f.n == 0 {
		select {
		case f.zero <- struct{}{}:
		default:
		}
	}
}

func (f *inFlight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// Track counts the requests h serves, but not those probe says are probes
// or scrapes (which would otherwise keep a drain waiting on themselves), so
// Drain can wait for the transfers in flight.
func (r *Readiness) Track(h http.Handler, probe func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if probe(req) {
			h.ServeHTTP(w, req)
			return
		}
		r.inFlight.add(1)
		// Deferred: an aborted transfer unwinds with a panic.
		defer r.inFlight.add(-1)
		h.ServeHTTP(w, req)
	})
}

// Draining reports whether Drain has started.
func (r *Readiness) Draining() bool { return r.draining.Load() }

// Drain makes the process Unready at once, then waits until no tracked
// request is in flight, or ctx ends (its error is returned). The listener
// stays open meanwhile: probes are answered 503, and a request that
// arrives before the load balancer has noticed is still served.
func (r *Readiness) Drain(ctx context.Context) error {
	r.draining.Store(true)
	for r.inFlight.count() > 0 {
		select {
		case <-r.inFlight.zero:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
