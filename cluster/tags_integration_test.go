package cluster_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullcache/pullcache/cluster"
	"github.com/pullcache/pullcache/proxy"
	"github.com/pullcache/pullcache/test/slowreg"
)

// clock is a settable clock shared by the members.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }
func withClock(c *clock) func(*proxy.Options) {
	return func(o *proxy.Options) { o.Now = c.now; o.TagTTL = time.Hour }
}

// A tag asked of every member costs one upstream GET for the cluster,
// and once the TTL has passed everywhere, one upstream HEAD: the tag's
// owner revalidates it for the others.
func TestTagRevalidatedOnceForTheCluster(t *testing.T) {
	reg := slowreg.New(0)
	srv := httptest.NewServer(reg)
	defer srv.Close()
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(srv.Listener.Addr().String()+"/test/img:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	clk := &clock{}
	ms := startCluster(t, 3, srv.URL, withClock(clk))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ask := func() {
		t.Helper()
		for _, m := range ms {
			if status := getManifest(ctx, t, m.url+"/v2/test/img/manifests/v1"); status != http.StatusOK {
				t.Fatalf("GET the tag at %s: status %d", m.url, status)
			}
		}
	}
	ask()
	if st := reg.Stats(); st.ManifestGETs != 1 {
		t.Errorf("%d upstream manifest GETs for three members, want 1 (HEADs %d)", st.ManifestGETs, st.ManifestHEADs)
	}
	clk.advance(2 * time.Hour)
	reg.Reset()
	ask()
	st := reg.Stats()
	if st.ManifestHEADs != 1 {
		t.Errorf("%d upstream manifest HEADs to revalidate the tag on three members, want 1", st.ManifestHEADs)
	}
	if st.ManifestGETs != 0 {
		t.Errorf("%d upstream manifest GETs for an unchanged tag, want 0", st.ManifestGETs)
	}
	owner := cluster.Rank(cluster.TagKey(testRegistry, "test/img", "v1"), []string{ms[0].url, ms[1].url, ms[2].url})[0]
	t.Logf("tag owner %s; after the TTL: %d HEAD, %d GET upstream", owner, st.ManifestHEADs, st.ManifestGETs)
}

func getManifest(ctx context.Context, t *testing.T, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
