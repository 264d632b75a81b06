package proxy

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fakeUpstream is go-containerregistry's in-memory registry behind a
// handler that counts requests and injects faults.
type fakeUpstream struct {
	t   *testing.T
	srv *httptest.Server
	reg http.Handler

	mu     sync.Mutex
	counts map[string]int
	fault  func(w http.ResponseWriter, r *http.Request) bool
	// token, when set, makes the upstream demand a Bearer token from its
	// /token endpoint, as Docker Hub does.
	token string
	// user and password, when set, make it demand Basic authentication.
	user, password string
	// setup is the transport test set-up pushes with.
	setup http.RoundTripper
}

func newFakeUpstream(t *testing.T, opts ...registry.Option) *fakeUpstream {
	opts = append([]registry.Option{registry.Logger(log.New(io.Discard, "", 0))}, opts...)
	u := &fakeUpstream{t: t, reg: registry.New(opts...), counts: map[string]int{}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	u.setup = setupTransport{http.DefaultTransport}
	t.Cleanup(u.srv.Close)
	return u
}

// newTLSFakeUpstream serves over TLS with a certificate of its own CA.
func newTLSFakeUpstream(t *testing.T) *fakeUpstream {
	u := &fakeUpstream{t: t, reg: registry.New(registry.Logger(log.New(io.Discard, "", 0))), counts: map[string]int{}}
	u.srv = httptest.NewTLSServer(http.HandlerFunc(u.serve))
	u.setup = setupTransport{u.srv.Client().Transport}
	t.Cleanup(u.srv.Close)
	return u
}

func (u *fakeUpstream) host() string {
	return strings.TrimPrefix(strings.TrimPrefix(u.srv.URL, "http://"), "https://")
}

func (u *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		u.count("GET token")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"token":"`+u.token+`"}`)
		return
	}
	if u.user != "" && !u.writing(r) {
		if user, pass, ok := r.BasicAuth(); !ok || user != u.user || pass != u.password {
			u.count("unauthorized")
			w.Header().Set("WWW-Authenticate", `Basic realm="fake"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	if u.token != "" && !u.writing(r) && r.Header.Get("Authorization") != "Bearer "+u.token {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+u.srv.URL+`/token",service="fake"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if u.writing(r) {
		u.reg.ServeHTTP(w, r)
		return
	}
	u.count(r.Method + " " + routeKey(r.URL.Path))
	u.mu.Lock()
	fault := u.fault
	u.mu.Unlock()
	if fault != nil && r.URL.Path != "/v2/" && fault(w, r) {
		return
	}
	u.reg.ServeHTTP(w, r)
}

// writing: test set-up pushes go around counting and faults.
func (u *fakeUpstream) writing(r *http.Request) bool {
	return r.Header.Get("X-Test-Setup") != ""
}

// routeKey is "manifests <ref>", "blobs <digest>", "referrers <digest>",
// "tags" or the path.
func routeKey(p string) string {
	for _, kind := range []string{"/manifests/", "/blobs/", "/referrers/"} {
		if i := strings.LastIndex(p, kind); i >= 0 {
			return strings.Trim(kind, "/") + " " + p[i+len(kind):]
		}
	}
	if strings.HasSuffix(p, "/tags/list") {
		return "tags"
	}
	return p
}

func (u *fakeUpstream) count(key string) {
	u.mu.Lock()
	u.counts[key]++
	u.mu.Unlock()
}

// calls returns how many requests matched method and key prefix.
func (u *fakeUpstream) calls(prefix string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for k, v := range u.counts {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func (u *fakeUpstream) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	u.mu.Lock()
	u.fault = f
	u.mu.Unlock()
}

// setupTransport marks set-up requests so they are not counted.
type setupTransport struct{ base http.RoundTripper }

func (s setupTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-Setup", "1")
	return s.base.RoundTrip(r)
}

func (u *fakeUpstream) ref(repoTag string) name.Reference {
	ref, err := name.ParseReference(u.host() + "/" + repoTag)
	if err != nil {
		u.t.Fatal(err)
	}
	return ref
}

func (u *fakeUpstream) push(repoTag string, img v1.Image) v1.Hash {
	u.t.Helper()
	if err := remote.Write(u.ref(repoTag), img, remote.WithTransport(u.setup)); err != nil {
		u.t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		u.t.Fatal(err)
	}
	return d
}

func (u *fakeUpstream) pushIndex(repoTag string, idx v1.ImageIndex) v1.Hash {
	u.t.Helper()
	if err := remote.WriteIndex(u.ref(repoTag), idx, remote.WithTransport(u.setup)); err != nil {
		u.t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		u.t.Fatal(err)
	}
	return d
}

func randomImage(t *testing.T, layerSize int64, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func ociImage(t *testing.T) v1.Image {
	t.Helper()
	img := mutate.MediaType(randomImage(t, 1024, 1), types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

// twoPlatformIndex is an index of a linux/amd64 and a linux/arm64 image.
func twoPlatformIndex(t *testing.T) (v1.ImageIndex, map[string]v1.Image) {
	t.Helper()
	imgs := map[string]v1.Image{}
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img := randomImage(t, 2048, 2)
		imgs[arch] = img
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: types.DockerManifestSchema2, Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.DockerManifestList)
	return idx, imgs
}

func rawManifest(t *testing.T, img v1.Image) []byte {
	t.Helper()
	b, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func layerBytes(t *testing.T, img v1.Image, i int) (v1.Hash, []byte) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[i].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[i].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		t.Fatal(err)
	}
	return d, buf.Bytes()
}
