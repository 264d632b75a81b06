package health

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func fixed(st State, reason string) Check { return func() (State, string) { return st, reason } }

// get asks h's /readyz and decodes the answer.
func get(t *testing.T, url string) (int, Report, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
		Checks  []struct {
			Name, State, Reason string
		} `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	out := Report{Reasons: rep.Reasons}
	for _, c := range rep.Checks {
		out.Checks = append(out.Checks, Result{Name: c.Name, State: parseState(c.State), Reason: c.Reason})
	}
	out.Status = parseState(rep.Status)
	return resp.StatusCode, out, resp.Header.Get("Content-Type")
}

func parseState(s string) State {
	for _, st := range []State{OK, Degraded, Unready} {
		if st.String() == s {
			return st
		}
	}
	return -1
}

func TestReadyzAnswersEachState(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(r *Readiness)
		wantCode   int
		wantStatus State
		wantReason string // a part of the first reason; "" for none
	}{
		{"nothing to report", func(*Readiness) {}, 200, OK, ""},
		{"index loading", func(r *Readiness) { r.SetLoading(true) }, 503, Unready, "loading: the index is loading"},
		{"index loaded", func(r *Readiness) { r.SetLoading(true); r.SetLoading(false) }, 200, OK, ""},
		{"a loader that knows it is loading", func(r *Readiness) { r.LoadingWhile(func() bool { return true }) }, 503, Unready, "loading: the index is loading"},
		{"a loader that is done", func(r *Readiness) { r.LoadingWhile(func() bool { return false }) }, 200, OK, ""},
		{"draining", func(r *Readiness) { r.draining.Store(true) }, 503, Unready, "draining: shutting down"},
		{"disk full is degraded, still ready", func(r *Readiness) { r.Add("disk", fixed(Degraded, "free 1 MiB below min_free")) }, 200, Degraded, "disk: free 1 MiB"},
		{"index read-only is degraded", func(r *Readiness) { r.Add("index", fixed(Degraded, "the index is read-only")) }, 200, Degraded, "index: the index is read-only"},
		{"upstream failing is degraded", func(r *Readiness) { r.Add("upstream", fixed(Degraded, "docker.io: connection refused")) }, 200, Degraded, "upstream: docker.io"},
		{"unready wins over degraded and is listed first", func(r *Readiness) {
			r.Add("disk", fixed(Degraded, "full"))
			r.SetLoading(true)
		}, 503, Unready, "loading:"},
		{"a check given twice is replaced", func(r *Readiness) {
			r.Add("upstream", fixed(Degraded, "failing"))
			r.Add("upstream", fixed(OK, "ignored"))
		}, 200, OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(r)
			srv := httptest.NewServer(r)
			defer srv.Close()
			code, rep, ctype := get(t, srv.URL+"/readyz")
			if code != tc.wantCode {
				t.Errorf("status code %d, want %d", code, tc.wantCode)
			}
			if ctype != "application/json" {
				t.Errorf("Content-Type %q", ctype)
			}
			if rep.Status != tc.wantStatus {
				t.Errorf("status %v, want %v", rep.Status, tc.wantStatus)
			}
			if tc.wantReason == "" && len(rep.Reasons) != 0 {
				t.Errorf("reasons %q, want none", rep.Reasons)
			}
			if tc.wantReason != "" && (len(rep.Reasons) == 0 || !strings.Contains(rep.Reasons[0], tc.wantReason)) {
				t.Errorf("reasons %q, want the first to contain %q", rep.Reasons, tc.wantReason)
			}
		})
	}
}

func TestOKChecksCarryNoReason(t *testing.T) {
	r, _ := New(nil)
	r.Add("upstream", fixed(OK, "all good"))
	for _, c := range r.Report().Checks {
		if c.Reason != "" {
			t.Errorf("check %s: reason %q on an OK state", c.Name, c.Reason)
		}
	}
}

func TestMetricsSayWhatReadyzSays(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	r.Add("disk", fixed(Degraded, "full"))
	want := map[string]float64{"pullcache_ready": 1, "pullcache_readiness_check/disk": 1,
		"pullcache_readiness_check/draining": 0, "pullcache_readiness_check/loading": 0, "pullcache_requests_in_flight": 0}
	got := gather(t, reg)
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	r.SetLoading(true)
	if got := gather(t, reg)["pullcache_ready"]; got != 0 {
		t.Errorf("pullcache_ready = %v while loading, want 0", got)
	}
	if got := gather(t, reg)["pullcache_readiness_check/loading"]; got != float64(Unready) {
		t.Errorf("loading check = %v while loading, want %v", got, float64(Unready))
	}
}

// gather returns every gauge of reg, keyed name or name/label-value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			for _, l := range m.GetLabel() {
				k += "/" + l.GetValue()
			}
			out[k] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestDrainWaitsForTransfers: Drain makes /readyz 503 at once, keeps
// serving, and returns only when the transfer in flight has finished.
func TestDrainWaitsForTransfers(t *testing.T) {
	r, _ := New(nil)
	started, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte("all the bytes"))
	})
	mux := http.NewServeMux()
	mux.Handle("/readyz", r)
	mux.Handle("/blob", slow)
	srv := httptest.NewServer(r.Track(mux, func(req *http.Request) bool { return req.URL.Path == "/readyz" }))
	defer srv.Close()

	body := make(chan string, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/blob")
		if err != nil {
			body <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-started
	drained := make(chan error, 1)
	go func() { drained <- r.Drain(context.Background()) }()
	waitFor(t, r.Draining)
	if code, _, _ := get(t, srv.URL+"/readyz"); code != 503 {
		t.Errorf("/readyz while draining: %d, want 503", code)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) with a transfer in flight", err)
	default:
	}
	close(release)
	if got := <-body; got != "all the bytes" {
		t.Errorf("transfer got %q", got)
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
}

func TestDrainGivesUpAtItsDeadline(t *testing.T) {
	r, _ := New(nil)
	r.inFlight.add(1) // a transfer that never ends
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Drain(ctx); err != context.DeadlineExceeded {
		t.Errorf("Drain = %v, want the deadline", err)
	}
}

// waitFor polls cond every millisecond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("condition not met within 5s")
		}
	}
}
