package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/proxy"
	"github.com/pullcache/pullcache/upstream"
)

// pushed is an image of three layers in a fresh registry, and the digests
// of its config and layers.
func pushed(t *testing.T) (*httptest.Server, []v1.Hash) {
	t.Helper()
	reg := httptest.NewServer(registry.New())
	t.Cleanup(reg.Close)
	img, err := random.Image(256<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(reg.URL, "http://") + "/library/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	blobs := []v1.Hash{m.Config.Digest}
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest)
	}
	return reg, blobs
}

// TestWarmWaitsForEveryBlobToBeCommitted: Warm asks Committed about every
// blob it pulled, and an image whose blob the mirror did not commit is
// not warm.
func TestWarmWaitsForEveryBlobToBeCommitted(t *testing.T) {
	mirror, blobs := pushed(t)
	var mu sync.Mutex
	var asked []v1.Hash
	committed := func(_ context.Context, h v1.Hash) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, h)
		if h == blobs[len(blobs)-1] {
			return errors.New("the fill failed at its commit")
		}
		return nil
	}
	res := admin.Warm(t.Context(), admin.WarmOptions{Mirror: mirror.URL, Committed: committed}, []string{"app:v1"})
	for _, b := range blobs {
		if !slices.Contains(asked, b) {
			t.Errorf("Committed was not asked about %s", b)
		}
	}
	if res[0].Error == "" {
		t.Error("an image whose last blob was not committed was reported warm")
	}
}

// TestWarmThenExportAtOnce warms through the store's own mirror and
// exports right after: every blob warm reported is in the store.
func TestWarmThenExportAtOnce(t *testing.T) {
	reg, _ := pushed(t)
	s := openStore(t)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	up, err := upstream.New(upstream.Options{Name: "docker.io", Endpoints: []string{reg.URL}, Transport: tr, Retry: &upstream.Retry{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{Store: s, Registries: map[string]proxy.Upstream{"docker.io": up}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	mirror := httptest.NewServer(p)
	t.Cleanup(mirror.Close)
	api := newAPI(t, s, admin.Options{Mirror: mirror.URL})
	resp := post(t, api.URL+"/admin/warm", "", []byte(`{"images": ["app:v1"]}`))
	defer resp.Body.Close()
	var res []admin.WarmResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res[0].Error != "" {
		t.Fatalf("warm: %s", res[0].Error)
	}
	_, exp := exportBytes(t, s, admin.ExportOptions{Names: []archive.Name{{Registry: "docker.io", Repository: "library/app", Tag: "v1"}}})
	if len(exp.Exported) != 1 {
		t.Errorf("exported %v, want the image warmed", exp.Exported)
	}
}
