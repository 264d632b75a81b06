package proxy

import (
	"net/http"
	"testing"

	"github.com/pullcache/pullcache/cache"
)

// A request Trusted admits (a cluster member's) passes no login nor
// access rule; the same request without the mark is an ordinary client's.
func TestTrustedRequestsPassNoLogin(t *testing.T) {
	s := newAccessSite(t, func(o *Options, _ *cache.Options) {
		o.Trusted = func(r *http.Request) bool { return r.Header.Get("X-Member") == "yes" }
	})
	path := "/v2/ghcr.io/myorg/app/blobs/" + s.privBlobs[0].String()
	if r := s.get(path); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous client: status %d, want 401", r.status)
	}
	if r := s.get(path, "X-Member", "no"); r.status != http.StatusUnauthorized {
		t.Errorf("client with a wrong mark: status %d, want 401", r.status)
	}
	if r := s.get(path, "X-Member", "yes"); r.status != http.StatusOK {
		t.Errorf("trusted member: status %d, want 200: %s", r.status, r.body)
	}
}
