package proxy

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pullcache/pullcache/cache"
)

// silence makes the upstream accept requests whose method and route key
// start with prefix ("HEAD manifests") and then say nothing until the
// mirror gives up on them or release is called, which makes them answer
// 503 and returns once one such request arrived and every one ended.
func silence(up *fakeUpstream, prefix string) (release func()) {
	var wg sync.WaitGroup
	var once sync.Once
	arrived, stop := make(chan struct{}), make(chan struct{})
	up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.Method+" "+routeKey(r.URL.Path), prefix) {
			return false
		}
		wg.Add(1)
		defer wg.Done()
		once.Do(func() { close(arrived) })
		select {
		case <-r.Context().Done():
		case <-stop:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return true
	})
	return func() {
		<-arrived
		close(stop)
		wg.Wait()
	}
}

// withWaits sets how long a client waits for a revalidation and for a
// cold fetch.
func withWaits(revalidate, response time.Duration) envOption {
	return func(o *Options, _ *cache.Options) {
		o.RevalidateTimeout, o.ResponseTimeout = revalidate, response
	}
}

func TestSilentUpstreamServesStaleWithinRevalidateTimeout(t *testing.T) {
	tests := []struct{ name, path, silent string }{
		{"tag", "/v2/library/app/manifests/v1", "HEAD manifests"},
		{"tag list", "/v2/library/app/tags/list", "GET tags"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t)
			d := up.push("library/app:v1", randomImage(t, 256, 1))
			e := newEnv(t, up, withPrefetch(false), withWaits(50*time.Millisecond, time.Minute))
			if r := e.get(tc.path, "Accept", acceptAll); r.status != http.StatusOK {
				t.Fatalf("cold: %d", r.status)
			}
			before := up.calls(tc.silent)
			release := silence(up, tc.silent)
			defer release()
			e.clock.advance(2 * time.Minute) // past the tag TTL
			r := e.get(tc.path, "Accept", acceptAll)
			if r.status != http.StatusOK || r.header.Get("X-Pullcache") != "stale" {
				t.Fatalf("status %d, X-Pullcache %q, want a stale 200", r.status, r.header.Get("X-Pullcache"))
			}
			if r.header.Get("Warning") == "" {
				t.Error("stale answer without a Warning")
			}
			if tc.name == "tag" && r.header.Get("Docker-Content-Digest") != d.String() {
				t.Errorf("digest %s, want the cached %s", r.header.Get("Docker-Content-Digest"), d)
			}
			if n := up.calls(tc.silent) - before; n != 1 {
				t.Errorf("upstream asked %d times, want 1", n)
			}
		})
	}
}

func TestSilentUpstreamColdRequestFailsWithinResponseTimeout(t *testing.T) {
	blob := "sha256:" + strings.Repeat("d", 64)
	tests := []struct{ name, method, path, silent string }{
		{"manifest", http.MethodGet, "/v2/library/app/manifests/v1", "GET manifests"},
		{"blob", http.MethodGet, "/v2/library/app/blobs/" + blob, "GET blobs"},
		{"blob HEAD", http.MethodHead, "/v2/library/app/blobs/" + blob, "HEAD blobs"},
		{"tag list", http.MethodGet, "/v2/library/app/tags/list", "GET tags"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t)
			e := newEnv(t, up, withPrefetch(false), withWaits(time.Minute, 50*time.Millisecond))
			release := silence(up, tc.silent)
			defer release()
			r := e.do(tc.method, tc.path, "Accept", acceptAll)
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", r.status, r.body)
			}
			if tc.method == http.MethodGet {
				if c := errorCode(t, r); c != CodeUnavailable {
					t.Errorf("code %s", c)
				}
			}
		})
	}
}
