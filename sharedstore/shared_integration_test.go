package sharedstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/proxy"
	"github.com/pullcache/pullcache/upstream"
)

const (
	testRegistry = "up.test"
	testRepo     = "team/app"
)

// countingUpstream is a registry that counts the requests reaching it and
// can be made unreachable (every connection cut at once, unanswered).
type countingUpstream struct {
	*httptest.Server
	requests atomic.Int64
	down     atomic.Bool
}

func startUpstream(t *testing.T) *countingUpstream {
	t.Helper()
	u := &countingUpstream{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		if u.down.Load() {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// push writes a random image of two layers to repo and returns it.
func (u *countingUpstream) push(t *testing.T, repo string) v1.Image {
	t.Helper()
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(u.Listener.Addr().String()+"/"+repo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return img
}

// mirror is one cache: its own directory, proxy and metrics, with the
// shared bucket layered around its upstream client as cmd layers it.
type mirror struct {
	url     string
	metrics *prometheus.Registry
	store   *Store
}

func startMirror(t *testing.T, gw *gateway, upURL string) *mirror {
	t.Helper()
	m := &mirror{metrics: prometheus.NewRegistry()}
	store, err := cache.Open(cache.Options{Dir: t.TempDir(), Housekeeping: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	up, err := upstream.New(upstream.Options{Name: testRegistry, Endpoints: []string{upURL}, LAN: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.store, err = New(gw.tier(t), nil, m.metrics); err != nil {
		t.Fatal(err)
	}
	ps, err := proxy.New(proxy.Options{Store: store, DefaultRegistry: testRegistry, ResponseTimeout: 10 * time.Second,
		Registries: map[string]proxy.Upstream{testRegistry: m.store.Reader(testRegistry, m.store.Writer(testRegistry, up))}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ps.Close)
	srv := httptest.NewServer(ps)
	t.Cleanup(srv.Close)
	m.url = srv.URL
	return m
}

// get fetches path from the mirror, returning the status and body.
func (m *mirror) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// pull fetches the image's manifest (by ref) and every blob through the
// mirror under repo, and checks every byte.
func (m *mirror) pull(t *testing.T, repo, ref string, img v1.Image) {
	t.Helper()
	raw, _ := img.RawManifest()
	want := map[string][]byte{"manifests/" + ref: raw}
	cfg, _ := img.RawConfigFile()
	cd, _ := img.ConfigName()
	want["blobs/"+cd.String()] = cfg
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		rc, _ := l.Compressed()
		b, _ := io.ReadAll(rc)
		want["blobs/"+d.String()] = b
	}
	for path, body := range want {
		status, got := m.get(t, "/v2/"+repo+"/"+path)
		if status != http.StatusOK || !bytes.Equal(got, body) {
			t.Fatalf("%s %s: %d, %d bytes (want 200, %d bytes, the same)", m.url, path, status, len(got), len(body))
		}
	}
}

// digests are the image's manifest and blobs.
func digests(t *testing.T, img v1.Image) (v1.Hash, []v1.Hash) {
	t.Helper()
	d, _ := img.Digest()
	cd, _ := img.ConfigName()
	out := []v1.Hash{cd}
	layers, _ := img.Layers()
	for _, l := range layers {
		ld, _ := l.Digest()
		out = append(out, ld)
	}
	return d, out
}

// waitStored polls the bucket until the image's manifest and blobs, and
// their links for repo, are there: the writes finish after the pull.
func waitStored(t *testing.T, s *Store, repo string, img v1.Image) {
	t.Helper()
	md, bs := digests(t, img)
	names := []string{manifestName(md.String()), linkName(testRegistry, repo, md.String())}
	for _, h := range bs {
		names = append(names, linkName(testRegistry, repo, h.String()))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, n := range names {
		for {
			if _, err := s.tier.GetObject(ctx, n); err == nil {
				break
			} else if !errors.Is(err, blobs.ErrNotFound) || ctx.Err() != nil {
				t.Fatalf("object %s: %v", n, err)
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}
	for _, h := range bs {
		if _, err := s.tier.Stat(ctx, h); err != nil {
			t.Fatalf("blob %s not in the bucket: %v", h, err)
		}
	}
}

// TestTwoMirrorsShareABucket: what mirror A pulled, mirror B serves from
// the bucket with the upstream unreachable, to the repositories it was
// pulled for only; with the bucket gone, both serve from their disks and
// fill from the upstream.
func TestTwoMirrorsShareABucket(t *testing.T) {
	gw := startGateway(t)
	up := startUpstream(t)
	img := up.push(t, testRepo)
	a, b := startMirror(t, gw, up.URL), startMirror(t, gw, up.URL)
	a.pull(t, testRepo, "v1", img)
	waitStored(t, a.store, testRepo, img)

	up.down.Store(true)
	before := up.requests.Load()
	md, bs := digests(t, img)
	b.pull(t, testRepo, md.String(), img)
	if n := up.requests.Load() - before; n != 0 {
		t.Errorf("B sent %d requests to the upstream, want 0: it had the bucket", n)
	}
	if hits := testutil.ToFloat64(b.store.metrics.reads.WithLabelValues("blob", "hit")); hits != float64(len(bs)) {
		t.Errorf("B's blob hits: %v, want %d", hits, len(bs))
	}

	// A repository without a link, its upstream down: the bucket's copy
	// must not leak to it.
	if status, body := b.get(t, "/v2/other/app/blobs/"+bs[0].String()); status == http.StatusOK {
		t.Errorf("blob served to a repository with no link and no upstream: %d, %d bytes", status, len(body))
	}
	if status, _ := b.get(t, "/v2/other/app/manifests/"+md.String()); status == http.StatusOK {
		t.Errorf("manifest served to a repository with no link and no upstream")
	}

	checkBucketDown(t, gw, up, a, b, img)
}

// checkBucketDown kills the gateway: both mirrors still serve what their
// disks hold and fill a new image from the upstream, whole and right.
func checkBucketDown(t *testing.T, gw *gateway, up *countingUpstream, a, b *mirror, img v1.Image) {
	t.Helper()
	gw.kill()
	up.down.Store(false)
	start := time.Now()
	md, _ := digests(t, img)
	a.pull(t, testRepo, md.String(), img)
	b.pull(t, testRepo, md.String(), img)
	fresh := up.push(t, "team/new")
	before := up.requests.Load()
	a.pull(t, "team/new", "v1", fresh)
	b.pull(t, "team/new", "v1", fresh)
	if up.requests.Load() == before {
		t.Error("the new image reached the mirrors without the upstream")
	}
	t.Logf("bucket down: both mirrors' pulls took %v", time.Since(start).Round(time.Millisecond))
	waitCount(t, a.store.metrics.writes.WithLabelValues("blob", "failed"), "A's failed blob writes")
	if e := testutil.ToFloat64(b.store.metrics.reads.WithLabelValues("blob", "error")); e == 0 {
		t.Error("B counted no bucket errors with the bucket down")
	}
	// One failure is paid, then reads leave the bucket alone.
	if e := testutil.ToFloat64(b.store.metrics.reads.WithLabelValues("blob", "skipped")); e == 0 {
		t.Error("B asked the bucket for every blob while it was down")
	}
}

// waitCount polls c until it is positive, for 60 s at most: a failed
// write ends after the SDK's retries, after the stream it copied.
func waitCount(t *testing.T, c prometheus.Counter, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for testutil.ToFloat64(c) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: none after 60 s", what)
		}
		<-tick.C
	}
}
