// Package health decides whether this process should be sent traffic: the
// answer of /readyz, which load balancers and Kubernetes Services act on,
// and the draining that graceful shutdown goes through.
//
// A Readiness holds named checks, each a function that says OK, Degraded or
// Unready with a reason. Unready (the index is loading, the process is
// draining) answers 503, so traffic goes elsewhere. Degraded (a full disk,
// a read-only index, a failing upstream) still answers 200: a degraded
// mirror serves what it has, and a single replica must not drop out of its
// Service for it. Both are named in the JSON body and in metrics.
//
// It knows nothing of the cache or the upstreams: cmd wires their states in
// as checks. It is not /healthz (the process is alive), which stays a
// constant answer.
package health

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// State is what a check says.
type State int

const (
	// OK: nothing to report.
	OK State = iota
	// Degraded: the mirror serves, but not all it could; still ready.
	Degraded
	// Unready: send no traffic here now.
	Unready
)

func (s State) String() string {
	switch s {
	case OK:
		return "ok"
	case Degraded:
		return "degraded"
	default:
		return "unready"
	}
}

// MarshalText writes the state as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Check reports a state and, unless OK, a reason an operator can act on.
// It is called on every probe and every scrape: it must be cheap and must
// not block.
type Check func() (State, string)

// Names of the checks Readiness always has.
const (
	CheckLoading  = "loading"
	CheckDraining = "draining"
)

// Readiness answers /readyz from its checks. The zero value is not usable;
// call New. It is safe for concurrent use.
type Readiness struct {
	mu     sync.Mutex
	checks []named

	loading  atomic.Int32  // loaders not done yet (SetLoading)
	loaders  []func() bool // LoadingWhile's, under mu
	draining atomic.Bool
	inFlight inFlight
}

type named struct {
	name  string
	check Check
}

// New returns a Readiness with its own two checks: loading (Unready while
// SetLoading(true) is in force) and draining (Unready once Drain started).
// Its metrics are registered on reg, when not nil.
func New(reg prometheus.Registerer) (*Readiness, error) {
	r := &Readiness{inFlight: inFlight{zero: make(chan struct{}, 1)}}
	r.Add(CheckLoading, r.loadingCheck)
	r.Add(CheckDraining, r.drainingCheck)
	if reg != nil {
		if err := reg.Register(collector{r}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Add appends a named check. A name given twice replaces the first check,
// so a package that learns more (per-endpoint upstream health, say) can
// refine a check cmd wired first. Names are metric label values: keep them
// few and fixed.
func (r *Readiness) Add(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.checks, func(n named) bool { return n.name == name })
	if i >= 0 {
		r.checks[i].check = c
		return
	}
	r.checks = append(r.checks, named{name, c})
}

// SetLoading marks one loader as loading (true) or done (false): the
// process is Unready while any loader that said true has not said false.
// A loader that never calls it costs nothing.
func (r *Readiness) SetLoading(loading bool) {
	if loading {
		r.loading.Add(1)
	} else {
		r.loading.Add(-1)
	}
}

// LoadingWhile makes the process Unready while loading returns true: for
// a loader that knows its own state (the store reading its index in the
// background), where SetLoading suits one that is told.
func (r *Readiness) LoadingWhile(loading func() bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loaders = append(r.loaders, loading)
}

func (r *Readiness) loadingCheck() (State, string) {
	r.mu.Lock()
	loaders := slices.Clone(r.loaders)
	r.mu.Unlock()
	busy := r.loading.Load() > 0
	for _, l := range loaders {
		busy = busy || l()
	}
	if busy {
		return Unready, "the index is loading"
	}
	return OK, ""
}

func (r *Readiness) drainingCheck() (State, string) {
	if r.draining.Load() {
		return Unready, "shutting down: finishing the transfers in flight"
	}
	return OK, ""
}

// Result is one check's answer.
type Result struct {
	Name   string `json:"name"`
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// Report is every check's answer and the worst of them: the body of
// /readyz.
type Report struct {
	// Status is the worst state: "ok", "degraded" or "unready".
	Status State `json:"status"`
	// Reasons are the reasons of the checks that are not OK, worst first.
	Reasons []string `json:"reasons,omitempty"`
	Checks  []Result `json:"checks"`
}

// Ready reports whether traffic should be sent: OK or Degraded.
func (rep Report) Ready() bool { return rep.Status != Unready }

// Report runs every check.
func (r *Readiness) Report() Report {
	r.mu.Lock()
	checks := slices.Clone(r.checks)
	r.mu.Unlock()
	rep := Report{Checks: make([]Result, 0, len(checks))}
	for _, c := range checks {
		st, reason := c.check()
		if st == OK {
			reason = ""
		}
		rep.Checks = append(rep.Checks, Result{Name: c.name, State: st, Reason: reason})
		rep.Status = max(rep.Status, st)
	}
	for _, st := range []State{Unready, Degraded} {
		for _, c := range rep.Checks {
			if c.State == st {
				rep.Reasons = append(rep.Reasons, c.Name+": "+c.Reason)
			}
		}
	}
	return rep
}

// ServeHTTP answers /readyz: 200 when ready (degraded included), 503 when
// not, with the Report as JSON either way.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	rep := r.Report()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rep.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	b, _ := json.Marshal(rep)
	_, _ = w.Write(append(b, '\n'))
}
