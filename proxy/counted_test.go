package proxy

import (
	"net/http"
	"testing"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/stats"
)

func withStats(st *stats.Recorder) envOption {
	return func(o *Options, _ *cache.Options) { o.Stats = st }
}

// TestStatsCountWhatTheUpstreamWasSpared pulls a manifest and a blob twice:
// the second pull is served from cache, so it is one manifest GET and one
// blob GET saved, and its bytes come from cache.
func TestStatsCountWhatTheUpstreamWasSpared(t *testing.T) {
	checkLeaks(t)
	up := newFakeUpstream(t)
	img := randomImage(t, 32<<10, 1)
	up.push("library/app:v1", img)
	d, layer := layerBytes(t, img, 0)
	st := stats.New(nil)
	e := newEnv(t, up, withPrefetch(false), withStats(st))
	for range 2 {
		if r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll); r.status != http.StatusOK {
			t.Fatalf("manifest: %d", r.status)
		}
		if r := e.get("/v2/library/app/blobs/" + d.String()); r.status != http.StatusOK {
			t.Fatalf("blob: %d", r.status)
		}
	}
	e.get("/v2/library/app/manifests/nope", "Accept", acceptAll)
	c := st.Snapshot().Total
	if c.ManifestGets != 3 {
		t.Errorf("client manifest GETs %d, want 3", c.ManifestGets)
	}
	if c.UpstreamManifestGets != 2 {
		t.Errorf("upstream manifest GETs %d, want 2 (one cold, one unknown tag)", c.UpstreamManifestGets)
	}
	if n := c.ManifestGetsSaved(); n != 1 {
		t.Errorf("manifest GETs saved %d, want 1", n)
	}
	if n := c.BlobGetsSaved(); n != 1 {
		t.Errorf("blob GETs saved %d, want 1", n)
	}
	if c.Hits != 2 {
		t.Errorf("hits %d, want 2", c.Hits)
	}
	if c.Misses != 2 {
		t.Errorf("misses %d, want 2", c.Misses)
	}
	manifest := int64(len(rawManifest(t, img)))
	if want := manifest + int64(len(layer)); c.BytesFromCache != want {
		t.Errorf("bytes from cache %d, want %d", c.BytesFromCache, want)
	}
	if want := manifest + int64(len(layer)); c.BytesFetched != want {
		t.Errorf("bytes fetched %d, want %d", c.BytesFetched, want)
	}
}

func TestStatsRecordServerErrors(t *testing.T) {
	checkLeaks(t)
	up := newFakeUpstream(t)
	st := stats.New(nil)
	e := newEnv(t, up, withStats(st))
	up.srv.Close() // nothing cached and the upstream gone: 503
	if r := e.get("/v2/library/app/manifests/v1"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", r.status)
	}
	s := st.Snapshot()
	if len(s.Errors) != 1 {
		t.Fatalf("errors %+v, want one", s.Errors)
	}
	got := s.Errors[0]
	if got.Status != 503 {
		t.Errorf("error status %d", got.Status)
	}
	if got.Path != "/v2/library/app/manifests/v1" {
		t.Errorf("error path %q", got.Path)
	}
	if got.Error == "" {
		t.Error("error event without its cause")
	}
}
