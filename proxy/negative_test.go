package proxy

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

func withNegativeTTL(d time.Duration) envOption {
	return func(o *Options, _ *cache.Options) { o.NegativeTTL = d }
}

// herd sends n concurrent GETs of path and returns their statuses.
func (e *env) herd(n int, path string) []int {
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.get(path, "Accept", acceptAll).status
		}()
	}
	wg.Wait()
	return statuses
}

func TestNegativeCacheOneUpstreamRequestPerTTL(t *testing.T) {
	missing := "sha256:" + strings.Repeat("b", 64)
	tests := []struct {
		what, path, upstreamKey string
	}{
		{"missing tag", "/v2/library/app/manifests/nope", "GET manifests nope"},
		{"missing manifest digest", "/v2/library/app/manifests/" + missing, "GET manifests " + missing},
		{"missing blob", "/v2/library/app/blobs/" + missing, "GET blobs " + missing},
		{"missing repository's tags", "/v2/library/none/tags/list", "GET tags"},
	}
	for _, tc := range tests {
		t.Run(tc.what, func(t *testing.T) {
			up := newFakeUpstream(t)
			up.push("library/app:v1", randomImage(t, 256, 1))
			e := newEnv(t, up, withPrefetch(false), withNegativeTTL(30*time.Second))
			for i, status := range e.herd(20, tc.path) {
				if status != http.StatusNotFound {
					t.Fatalf("client %d: status %d, want 404", i, status)
				}
			}
			if n := up.calls(tc.upstreamKey); n != 1 {
				t.Fatalf("20 concurrent requests cost %d upstream requests, want 1", n)
			}
			e.clock.advance(29 * time.Second)
			e.get(tc.path, "Accept", acceptAll)
			if n := up.calls(tc.upstreamKey); n != 1 {
				t.Errorf("within negative_ttl: %d upstream requests, want still 1", n)
			}
			e.clock.advance(2 * time.Second)
			if r := e.get(tc.path, "Accept", acceptAll); r.status != http.StatusNotFound {
				t.Errorf("after negative_ttl: status %d", r.status)
			}
			if n := up.calls(tc.upstreamKey); n != 2 {
				t.Errorf("after negative_ttl: %d upstream requests, want 2", n)
			}
		})
	}
}

// TestNegativeCacheKeepsNoRefusals: a 401 or 403 says nothing about
// whether the object exists, nor that the upstream is down: it is not
// remembered. A 5xx or a 429 is, until the upstream answers again
// (TestUnavailabilityIsForgottenWhenTheUpstreamAnswers).
func TestNegativeCacheKeepsNoRefusals(t *testing.T) {
	for _, tc := range []struct {
		status int
		calls  int
	}{
		{http.StatusForbidden, 3}, {http.StatusUnauthorized, 3},
		{http.StatusServiceUnavailable, 1}, {http.StatusInternalServerError, 1}, {http.StatusTooManyRequests, 1},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			up := newFakeUpstream(t)
			up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				w.WriteHeader(tc.status)
				return true
			})
			e := newEnv(t, up, withPrefetch(false), withNegativeTTL(time.Minute))
			for range 3 {
				if r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll); r.status < 400 {
					t.Fatalf("status %d", r.status)
				}
			}
			if n := up.calls("GET manifests v1"); n != tc.calls {
				t.Errorf("3 requests answered %d cost %d upstream requests, want %d", tc.status, n, tc.calls)
			}
		})
	}
}

// TestUnavailabilityIsForgottenWhenTheUpstreamAnswers: while the upstream
// fails, a herd costs it one request, and the clients get the remembered
// 503; once it answers again (the probe sees it), the next request
// fetches, long before negative_ttl ends.
func TestUnavailabilityIsForgottenWhenTheUpstreamAnswers(t *testing.T) {
	const probeEvery = 50 * time.Millisecond
	up := newFakeUpstream(t)
	up.push("library/app:v1", randomImage(t, 256, 1))
	var down atomic.Bool
	down.Store(true)
	up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return down.Load()
	})
	reg := newRegistry(t, "docker.io", []string{up.srv.URL}, func(o *upstream.Options) { o.ProbeInterval = probeEvery })
	e := newEnv(t, up, withPrefetch(false), withNegativeTTL(time.Hour), withRegistry("docker.io", reg))
	const path = "/v2/library/app/manifests/v1"
	for i, status := range e.herd(20, path) {
		if status != http.StatusServiceUnavailable {
			t.Fatalf("client %d during the outage: status %d, want 503", i, status)
		}
	}
	e.get(path, "Accept", acceptAll)
	if n := up.calls("GET manifests v1"); n != 1 {
		t.Fatalf("21 requests during the outage cost %d upstream requests, want 1", n)
	}
	down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(probeEvery / 5)
	defer tick.Stop()
	for e.get(path, "Accept", acceptAll).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the manifest is still refused 5s after the upstream answers again")
		}
		<-tick.C
	}
	if n := up.calls("GET manifests v1"); n != 2 {
		t.Errorf("upstream manifest requests: %d, want 2 (the failed one, the one after recovery)", n)
	}
}

func TestNegativeCacheIsPerRepositoryAndOffWithZero(t *testing.T) {
	up := newFakeUpstream(t)
	up.push("library/app:v1", randomImage(t, 256, 1))
	e := newEnv(t, up, withPrefetch(false), withNegativeTTL(time.Minute))
	e.get("/v2/library/other/manifests/v1", "Accept", acceptAll)
	if r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll); r.status != http.StatusOK {
		t.Errorf("a 404 of another repository answered this one: status %d", r.status)
	}

	off := newEnv(t, up, withPrefetch(false), withNegativeTTL(0))
	before := up.calls("GET manifests nope")
	off.get("/v2/library/app/manifests/nope", "Accept", acceptAll)
	off.get("/v2/library/app/manifests/nope", "Accept", acceptAll)
	if n := up.calls("GET manifests nope") - before; n != 2 {
		t.Errorf("negative_ttl 0: %d upstream requests for 2 misses, want 2", n)
	}
}

// TestMissesAreNotWarnings: a request for something that does not exist,
// online or offline, logs one info line with the cause and no warning.
func TestMissesAreNotWarnings(t *testing.T) {
	missing := "sha256:" + strings.Repeat("c", 64)
	for _, offline := range []bool{false, true} {
		t.Run(fmt.Sprintf("offline=%v", offline), func(t *testing.T) {
			up := newFakeUpstream(t)
			var logs bytes.Buffer
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelInfo}))
			e := newEnv(t, up, withPrefetch(false), func(o *Options, co *cache.Options) {
				o.Logger, co.Logger, o.Offline = log, log, offline
			})
			for _, path := range []string{"/v2/library/app/blobs/" + missing, "/v2/library/app/manifests/nope"} {
				if r := e.get(path, "Accept", acceptAll); r.status != http.StatusNotFound {
					t.Fatalf("%s: status %d", path, r.status)
				}
			}
			e.stop()
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("a miss was logged as a warning:\n%s", logs.String())
			}
			if n := strings.Count(logs.String(), "level=INFO msg=request"); n != 2 {
				t.Errorf("%d info request lines, want 2:\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), "err=") {
				t.Errorf("the request lines do not say why:\n%s", logs.String())
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
