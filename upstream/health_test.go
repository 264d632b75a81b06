package upstream

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// outage is a transport whose connections are refused while down is set,
// and which otherwise answers with h.
type outage struct {
	mem  *memTransport
	down atomic.Bool
}

func (o *outage) RoundTrip(req *http.Request) (*http.Response, error) {
	if o.down.Load() {
		o.mem.mu.Lock()
		o.mem.reqs = append(o.mem.reqs, req.URL.Host+" "+req.Method+" "+req.URL.Path)
		o.mem.mu.Unlock()
		return nil, &netError{syscall.ECONNREFUSED}
	}
	return o.mem.RoundTrip(req)
}

type netError struct{ err error }

func (e *netError) Error() string { return "dial tcp: connect: " + e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// probes counts the probes (GET /v2/ of the endpoint itself) sent.
func (o *outage) probes() int { return o.mem.count("GET /v2/") - o.mem.count("GET /v2/org") }

// TestAFailureIsOverWhenTheRegistryAnswers: while an endpoint refuses
// connections, a failure to reach it is not over, however often it is
// asked, and the endpoint is probed at most once per probe interval; once
// it answers, the next probe sees it and the failure is over within one
// interval.
func TestAFailureIsOverWhenTheRegistryAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &outage{mem: &memTransport{h: pingOK(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("blob")) })}}
		o.down.Store(true)
		reg := prometheus.NewRegistry()
		m, err := NewMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		r := newTestRegistry(t, []string{"http://a.lan"}, func(opts *Options) {
			opts.Transport = o
			opts.Metrics = m
		})
		_, _, err = r.GetBlob(context.Background(), "org/app", blobDigest, 0)
		var ue *Error
		if !errors.As(err, &ue) || ue.Kind != Unavailable {
			t.Fatalf("GetBlob from a refusing endpoint: %v, want an Unavailable *Error", err)
		}
		const outageFor = 60 * time.Second
		pings := o.probes() // the client's own ping before the GET
		for range outageFor / (100 * time.Millisecond) {
			if ue.Over() {
				t.Fatalf("the failure is over at %s while the endpoint still refuses", time.Since(ue.at))
			}
			synctest.Wait()
			time.Sleep(100 * time.Millisecond)
		}
		if got, most := o.probes()-pings, int(outageFor/DefaultProbeInterval)+1; got > most || got < most-2 {
			t.Errorf("probes in a %s outage: %d, want about one per %s (%d)", outageFor, got, DefaultProbeInterval, most)
		}
		if got := r.Health()["a.lan"]; got != StateFailing {
			t.Errorf("health during the outage: %s, want failing", got)
		}
		if got := gaugeValue(t, m.failingEndpoints.WithLabelValues("test.lan")); got != 1 {
			t.Errorf("failing endpoints gauge: %v, want 1", got)
		}

		o.down.Store(false)
		back := time.Now()
		for !ue.Over() {
			if time.Since(back) > DefaultProbeInterval {
				t.Fatalf("the failure is not over %s after the endpoint answers again", time.Since(back))
			}
			synctest.Wait()
			time.Sleep(10 * time.Millisecond)
		}
		if got := r.Health()["a.lan"]; got != StateUp {
			t.Errorf("health after the outage: %s, want up", got)
		}
		if got := gaugeValue(t, m.failingEndpoints.WithLabelValues("test.lan")); got != 0 {
			t.Errorf("failing endpoints gauge after recovery: %v, want 0", got)
		}
		if got := counterValue(t, m.recoveries.WithLabelValues("test.lan")); got != 1 {
			t.Errorf("recoveries: %v, want 1", got)
		}
	})
}

// TestAnyAnswerCounts: a probe answered 401 (the registry wants a token)
// or 404 says the registry is there; a 503 says it is not.
func TestAnyAnswerCounts(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   State
	}{{http.StatusUnauthorized, StateUp}, {http.StatusNotFound, StateUp}, {http.StatusOK, StateUp}, {http.StatusServiceUnavailable, StateFailing}} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var status atomic.Int64
				status.Store(http.StatusBadGateway)
				mt := &memTransport{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(int(status.Load()))
				})}
				r := newTestRegistry(t, []string{"http://a.lan"}, func(opts *Options) { opts.Transport = mt })
				if _, err := r.HeadManifest(context.Background(), "org/app", "v1", nil); KindOf(err) != Unavailable {
					t.Fatalf("HEAD from a failing registry: %v", err)
				}
				status.Store(int64(tc.status))
				time.Sleep(DefaultProbeInterval)
				r.Health() // kicks the probe
				synctest.Wait()
				if got := r.Health()["a.lan"]; got != tc.want {
					t.Errorf("after a probe answered %d: %s, want %s", tc.status, got, tc.want)
				}
			})
		})
	}
}

// TestAFailureOfAnAnsweringRegistryIsHeldAnInterval: a request that keeps
// failing (5xx) at a registry that answers other requests is over only a
// probe interval after it failed, so it is asked at most once per
// interval; a 429 is over when its Retry-After has passed, and one with
// none is never over by itself (the remembering side's backoff decides).
func TestAFailureOfAnAnsweringRegistryIsHeldAnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mt := &memTransport{h: pingOK(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/v2/org/broken/manifests/v1":
				w.WriteHeader(http.StatusInternalServerError)
			case "/v2/org/limited/manifests/v1":
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusTooManyRequests)
			case "/v2/org/limited/manifests/v2":
				w.WriteHeader(http.StatusTooManyRequests)
			default:
				w.Header().Set("Docker-Content-Digest", blobDigest.String())
			}
		})}
		r := newTestRegistry(t, []string{"http://a.lan"}, func(opts *Options) { opts.Transport = mt })
		ctx := context.Background()
		_, broken := r.HeadManifest(ctx, "org/broken", "v1", nil)
		_, limited := r.HeadManifest(ctx, "org/limited", "v1", nil)
		_, bare := r.HeadManifest(ctx, "org/limited", "v2", nil)
		if _, err := r.HeadManifest(ctx, "org/fine", "v1", nil); err != nil {
			t.Fatal(err)
		}
		over := func(err error) bool {
			var ue *Error
			return errors.As(err, &ue) && ue.Over()
		}
		steps := []struct {
			at                    time.Duration
			broken, limited, bare bool
		}{
			{0, false, false, false},
			{DefaultProbeInterval - time.Millisecond, false, false, false},
			{DefaultProbeInterval, true, false, false},
			{7 * time.Second, true, true, false},
			{time.Hour, true, true, false},
		}
		start := time.Now()
		for _, st := range steps {
			time.Sleep(time.Until(start.Add(st.at)))
			if _, err := r.HeadManifest(ctx, "org/fine", "v1", nil); err != nil {
				t.Fatal(err)
			}
			if got := over(broken); got != st.broken {
				t.Errorf("at %s: a 500 of an answering registry over: %v, want %v", st.at, got, st.broken)
			}
			if got := over(limited); got != st.limited {
				t.Errorf("at %s: a 429 with Retry-After 7 over: %v, want %v", st.at, got, st.limited)
			}
			if got := over(bare); got != st.bare {
				t.Errorf("at %s: a 429 without Retry-After over: %v, want %v", st.at, got, st.bare)
			}
		}
	})
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
