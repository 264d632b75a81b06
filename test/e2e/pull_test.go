package e2e

import (
	"context"
	"net/http"
	"testing"
)

// TestClientsPullThroughPullcache has every client pull every test image
// through pullcache: cold, then warm with fresh client state (no upstream
// blob GETs), then with the upstream gone. Each client gets its own upstream
// and pullcache, so each pull starts cold and the clients run in parallel.
func TestClientsPullThroughPullcache(t *testing.T) {
	requireE2E(t)
	fx := loadFixtures(t)
	for _, c := range allClients() {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			requireTools(t, c.Tools()...)
			ctx := context.Background()
			up := newUpstream(t)
			up.push(t, fx.images...)
			srv := startPullcache(t, t.TempDir(), map[string]string{"docker.io": up.url()})

			t.Run("cold", func(t *testing.T) {
				for _, tc := range fx.cases {
					t.Run(tc.String(), func(t *testing.T) {
						checkPulled(t, tc, c.Pull(ctx, t, srv.addr, tc.image.ref(), tc.platform))
					})
				}
				up.requireEachBlobFetchedAtMostOnce(t)
			})

			t.Run("warm", func(t *testing.T) {
				for _, tc := range fx.cases {
					t.Run(tc.String(), func(t *testing.T) {
						blobs := up.count(http.MethodGet, kindBlob)
						manifests := up.count(http.MethodGet, kindManifest)
						checkPulled(t, tc, c.Pull(ctx, t, srv.addr, tc.image.ref(), tc.platform))
						if n := up.count(http.MethodGet, kindBlob) - blobs; n != 0 {
							t.Errorf("warm pull sent %d blob GETs upstream, want 0", n)
						}
						// Within the tag TTL nothing is revalidated, and Docker
						// Hub's rate limit counts manifest GETs.
						if n := up.count(http.MethodGet, kindManifest) - manifests; n != 0 {
							t.Errorf("warm pull sent %d manifest GETs upstream, want 0", n)
						}
					})
				}
			})

			up.stop()
			t.Run("upstream-down", func(t *testing.T) {
				for _, tc := range fx.cases {
					t.Run(tc.String(), func(t *testing.T) {
						checkPulled(t, tc, c.Pull(ctx, t, srv.addr, tc.image.ref(), tc.platform))
					})
				}
			})
		})
	}
}

// TestRestartServesCacheWithUpstreamGone warms a cache, stops the upstream,
// restarts pullcache on the same data directory and pulls everything again
// (MISSION: a warmed mirror serves pulls with no upstream at all).
func TestRestartServesCacheWithUpstreamGone(t *testing.T) {
	requireE2E(t)
	c := craneClient{}
	requireTools(t, c.Tools()...)
	fx := loadFixtures(t)
	ctx := context.Background()
	up := newUpstream(t)
	up.push(t, fx.images...)
	data := t.TempDir()
	upstreams := map[string]string{"docker.io": up.url()}

	first := startPullcache(t, data, upstreams)
	for _, tc := range fx.cases {
		checkPulled(t, tc, c.Pull(ctx, t, first.addr, tc.image.ref(), tc.platform))
	}
	up.stop()
	first.stop()

	// Every tag is expired at once, so each by-tag request tries the dead
	// upstream first and must fall back to the cached digest.
	second := startPullcache(t, data, upstreams, "--tag-ttl", "1ms")
	for _, tc := range fx.cases {
		t.Run(tc.String(), func(t *testing.T) {
			checkPulled(t, tc, c.Pull(ctx, t, second.addr, tc.image.ref(), tc.platform))
		})
	}
}
