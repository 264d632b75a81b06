package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/pullcache/pullcache/auth"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// accessSite is a mirror with logins on: docker.io public (anonymous
// pulls), and ghcr.io behind an upstream that demands the mirror's own
// credentials, where myorg/* is for user ci and other/* for any user.
type accessSite struct {
	*env
	auth  *auth.Authenticator
	priv  *fakeUpstream
	hub   *fakeUpstream
	owned map[string]map[string]bool // ghcr.io repository → digests it holds
	// digests of ghcr.io/myorg/app:v1: its manifest and blobs.
	privManifest v1.Hash
	privBlobs    []v1.Hash
	// a signature referring to the private manifest, in its repository.
	privReferrer v1.Hash
	// a blob each of the other repositories, for blob rows.
	hubBlob, otherBlob v1.Hash
}

var accessRules = []auth.Rule{
	{Registries: []string{"docker.io"}, Anonymous: true},
	{Registries: []string{"ghcr.io"}, Repositories: []string{"myorg/*"}, Users: []string{"ci"}},
	{Registries: []string{"ghcr.io"}, Repositories: []string{"other/*"}, Users: []string{"*"}},
}

func writeHtpasswd(t *testing.T, users ...string) string {
	t.Helper()
	var lines []string
	for i := 0; i+1 < len(users); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(users[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, users[i]+":"+string(h))
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func blobDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out := []v1.Hash{cfg}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func newAccessSite(t *testing.T, opts ...envOption) *accessSite {
	t.Helper()
	s := &accessSite{hub: newFakeUpstream(t), priv: newFakeUpstream(t, registry.WithReferrersSupport(true)), owned: map[string]map[string]bool{}}
	pubImg := randomImage(t, 512, 1)
	s.hub.push("library/alpine:v1", pubImg)
	s.hubBlob = blobDigests(t, pubImg)[0]
	privImg := randomImage(t, 1024, 2)
	s.privManifest = s.priv.push("myorg/app:v1", privImg)
	s.privBlobs = blobDigests(t, privImg)
	s.privReferrer = s.priv.push("myorg/app:sig", artifact(t, privImg, sigType))
	otherImg := randomImage(t, 512, 1)
	s.priv.push("other/app:v1", otherImg)
	s.otherBlob = blobDigests(t, otherImg)[0]
	for repo, img := range map[string]v1.Image{"myorg/app": privImg, "other/app": otherImg} {
		s.owned[repo] = map[string]bool{}
		for _, d := range blobDigests(t, img) {
			s.owned[repo][d.String()] = true
		}
	}
	// The in-memory registry shares blobs across repositories; a real
	// one answers 404 for a blob the repository does not hold.
	s.priv.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		repo, d, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/")
		if ok && !s.owned[repo][d] {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		return false
	})
	s.priv.user, s.priv.password = "mirror-bot", "upstream-secret-5e1"
	var err error
	s.auth, err = auth.New(auth.Options{
		HtpasswdFile: writeHtpasswd(t, "ci", "ci-pw", "bob", "bob-pw"),
		Rules:        accessRules,
		// The tables send many wrong passwords from one address.
		LoginFailures: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	envOpts := []envOption{withPrefetch(false),
		withRegistry("ghcr.io", newRegistry(t, "ghcr.io", []string{s.priv.srv.URL}, func(o *upstream.Options) {
			o.Credentials = &authn.Basic{Username: "mirror-bot", Password: "upstream-secret-5e1"}
		})),
		func(o *Options, _ *cache.Options) {
			o.Auth = s.auth
			o.Hosts = map[string]string{"ghcr.mirror.lan": "ghcr.io"}
		}}
	s.env = newEnv(t, s.hub, append(envOpts, opts...)...)
	return s
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// TestAccessDecisions runs every identity against public, allowed and
// denied repositories, for manifests, blobs, tag lists and referrers, and
// against the catalogs of the public and the private registry.
func TestAccessDecisions(t *testing.T) {
	checkLeaks(t)
	s := newAccessSite(t)
	identities := []struct{ name, authz string }{
		{"anonymous", ""},
		{"ci", basicAuth("ci", "ci-pw")},
		{"bob", basicAuth("bob", "bob-pw")},
		{"wrong password", basicAuth("ci", "guess")},
	}
	targets := []struct {
		name, repo string
		blob       v1.Hash
		want       map[string]int // identity → status
	}{
		{"public registry", "library/alpine", s.hubBlob,
			map[string]int{"anonymous": 200, "ci": 200, "bob": 200, "wrong password": 401}},
		{"private registry, repository of ci", "ghcr.io/myorg/app", s.privBlobs[0],
			map[string]int{"anonymous": 401, "ci": 200, "bob": 403, "wrong password": 401}},
		{"private registry, repository of any user", "ghcr.io/other/app", s.otherBlob,
			map[string]int{"anonymous": 401, "ci": 200, "bob": 200, "wrong password": 401}},
		{"private registry, no rule", "ghcr.io/third/app", s.otherBlob,
			map[string]int{"anonymous": 401, "ci": 403, "bob": 403, "wrong password": 401}},
		// Probing names tells a client that has not logged in nothing.
		{"registry not configured", "quay.io/org/app", s.otherBlob,
			map[string]int{"anonymous": 401, "ci": 404, "bob": 404, "wrong password": 401}},
	}
	routes := []struct {
		name string
		path func(repo string, blob v1.Hash) string
	}{
		{"manifest", func(repo string, _ v1.Hash) string { return "/v2/" + repo + "/manifests/v1" }},
		{"blob", func(repo string, b v1.Hash) string { return "/v2/" + repo + "/blobs/" + b.String() }},
		{"tags", func(repo string, _ v1.Hash) string { return "/v2/" + repo + "/tags/list" }},
		{"referrers", func(repo string, b v1.Hash) string { return "/v2/" + repo + "/referrers/" + b.String() }},
	}
	for _, id := range identities {
		for _, tg := range targets {
			for _, rt := range routes {
				want := tg.want[id.name]
				if want == 200 && tg.name == "private registry, no rule" {
					continue
				}
				t.Run(id.name+"/"+tg.name+"/"+rt.name, func(t *testing.T) {
					hdr := []string{"Accept", acceptAll}
					if id.authz != "" {
						hdr = append(hdr, "Authorization", id.authz)
					}
					r := s.get(rt.path(tg.repo, tg.blob), hdr...)
					if r.status != want {
						t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
					}
					checkDenial(t, r)
				})
			}
		}
	}
	// The catalog names no repository: it needs a rule covering the whole
	// registry, which docker.io has and ghcr.io does not.
	catalogs := []struct {
		path string
		want map[string]int
	}{
		{"/v2/_catalog", map[string]int{"anonymous": 200, "ci": 200, "bob": 200, "wrong password": 401}},
		{"/v2/ghcr.io/_catalog", map[string]int{"anonymous": 401, "ci": 403, "bob": 403, "wrong password": 401}},
		{"/v2/_catalog?ns=ghcr.io", map[string]int{"anonymous": 401, "ci": 403, "bob": 403, "wrong password": 401}},
	}
	for _, id := range identities {
		for _, c := range catalogs {
			t.Run(id.name+"/catalog "+c.path, func(t *testing.T) {
				var hdr []string
				if id.authz != "" {
					hdr = []string{"Authorization", id.authz}
				}
				r := s.get(c.path, hdr...)
				if r.status != c.want[id.name] {
					t.Fatalf("status %d, want %d: %s", r.status, c.want[id.name], r.body)
				}
				checkDenial(t, r)
			})
		}
	}
	for _, id := range identities[:3] {
		hdr := []string{}
		if id.authz != "" {
			hdr = []string{"Authorization", id.authz}
		}
		want := 200
		if id.authz == "" {
			want = 401 // the API root challenges, so clients learn to log in
		}
		if r := s.get("/v2/", hdr...); r.status != want {
			t.Errorf("%s GET /v2/: %d, want %d", id.name, r.status, want)
		}
	}
}

// checkDenial checks a refusal's shape: OCI error JSON with UNAUTHORIZED
// and a Bearer challenge, or DENIED.
func checkDenial(t *testing.T, r response) {
	t.Helper()
	switch r.status {
	case 401:
		if c := errorCode(t, r); c != CodeUnauthorized {
			t.Errorf("code %s, want UNAUTHORIZED", c)
		}
		if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, `Bearer realm="http://127.0.0.1:`) || !strings.Contains(ch, `/auth/token",service="pullcache"`) {
			t.Errorf("challenge %q", ch)
		}
	case 403:
		if c := errorCode(t, r); c != CodeDenied {
			t.Errorf("code %s, want DENIED", c)
		}
	case 404:
		if c := errorCode(t, r); c != CodeNameUnknown {
			t.Errorf("code %s, want NAME_UNKNOWN", c)
		}
	}
}

func token(t *testing.T, a *auth.Authenticator, authz string, scopes ...string) string {
	t.Helper()
	q := "?service=pullcache"
	for _, s := range scopes {
		q += "&scope=" + s
	}
	req := httptest.NewRequest(http.MethodGet, "/auth/token"+q, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	a.TokenHandler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	var body struct{ Token string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	return body.Token
}

func TestAccessWithTokens(t *testing.T) {
	s := newAccessSite(t)
	tok := token(t, s.auth, basicAuth("ci", "ci-pw"), "repository:ghcr.io/myorg/app:pull")
	bearer := []string{"Accept", acceptAll, "Authorization", "Bearer " + tok}
	if r := s.get("/v2/ghcr.io/myorg/app/manifests/v1", bearer...); r.status != 200 {
		t.Fatalf("token of the repository: %d %s", r.status, r.body)
	}
	r := s.get("/v2/ghcr.io/other/app/manifests/v1", bearer...)
	if r.status != 401 {
		t.Fatalf("token of another repository: %d", r.status)
	}
	if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `scope="repository:ghcr.io/other/app:pull",error="insufficient_scope"`) {
		t.Errorf("challenge names no scope: %q", ch)
	}
	if r := s.get("/v2/", "Authorization", "Bearer "+tok); r.status != 200 {
		t.Errorf("API root with a token: %d", r.status)
	}
	anon := token(t, s.auth, "", "repository:library/alpine:pull", "repository:ghcr.io/myorg/app:pull")
	if r := s.get("/v2/library/alpine/manifests/v1", "Accept", acceptAll, "Authorization", "Bearer "+anon); r.status != 200 {
		t.Errorf("anonymous token, public: %d", r.status)
	}
	if r := s.get("/v2/ghcr.io/myorg/app/manifests/v1", "Accept", acceptAll, "Authorization", "Bearer "+anon); r.status != 401 {
		t.Errorf("anonymous token, private: %d", r.status)
	}
	if r := s.get("/v2/library/alpine/manifests/v1", "Authorization", "Bearer not-a-token"); r.status != 401 {
		t.Errorf("garbage token: %d", r.status)
	}
}

// TestPrivateContentDoesNotLeak pulls ghcr.io/myorg/app as ci, so its
// manifest and blobs are cached and linked, then tries every way of
// naming them — paths, ns=, prefixes, Host, case, other repositories and
// registries — as clients that may not pull it. None gets the content.
func TestPrivateContentDoesNotLeak(t *testing.T) {
	s := newAccessSite(t)
	ci := basicAuth("ci", "ci-pw")
	if r := s.get("/v2/ghcr.io/myorg/app/manifests/v1", "Accept", acceptAll, "Authorization", ci); r.status != 200 {
		t.Fatalf("ci's pull: %d %s", r.status, r.body)
	}
	if r := s.get("/v2/ghcr.io/myorg/app/referrers/"+s.privManifest.String(), "Authorization", ci); !bytes.Contains(r.body, []byte(s.privReferrer.String())) {
		t.Fatalf("ci's referrers of the private manifest do not list its signature: %d %s", r.status, r.body)
	}
	secrets := map[string][]byte{s.privReferrer.String(): []byte(s.privReferrer.String())}
	for _, d := range s.privBlobs {
		r := s.get("/v2/ghcr.io/myorg/app/blobs/"+d.String(), "Authorization", ci)
		if r.status != 200 {
			t.Fatalf("ci's blob %s: %d", d, r.status)
		}
		secrets[d.String()] = r.body
	}
	digests := append([]v1.Hash{s.privManifest}, s.privBlobs...)
	names := []struct{ path, host string }{
		{"/v2/ghcr.io/myorg/app/%s/%s", ""},
		{"/v2/GHCR.IO/myorg/app/%s/%s", ""},
		{"/v2/myorg/app/%s/%s?ns=ghcr.io", ""},
		{"/v2/myorg/app/%s/%s?ns=GHCR.io", ""},
		{"/v2/myorg/app/%s/%s", "ghcr.mirror.lan"},
		{"/v2/myorg/app/%s/%s", "GHCR.MIRROR.LAN:5000"},
		{"/v2/myorg/app/%s/%s", ""},                      // docker.io/myorg/app
		{"/v2/docker.io/myorg/app/%s/%s", ""},            // the same
		{"/v2/library/alpine/%s/%s", ""},                 // a public repository
		{"/v2/ghcr.io/myorg/app/%s/%s?ns=docker.io", ""}, // docker.io/ghcr.io/myorg/app
		{"/v2/ghcr.io/other/app/%s/%s", ""},              // a repository bob may pull
		{"/v2/ghcr.io/myorg/app/../../other/app/%s/%s", ""},
	}
	clients := []struct{ name, authz string }{
		{"anonymous", ""},
		{"wrong password", basicAuth("ci", "nope")},
		{"bob", basicAuth("bob", "bob-pw")},
		{"anonymous token", "Bearer " + token(t, s.auth, "", "repository:ghcr.io/myorg/app:pull", "repository:myorg/app:pull")},
		{"bob's token", "Bearer " + token(t, s.auth, basicAuth("bob", "bob-pw"), "repository:ghcr.io/myorg/app:pull", "repository:ghcr.io/other/app:pull")},
	}
	for _, c := range clients {
		for _, n := range names {
			for i, d := range append(digests, s.privManifest) {
				kind := "blobs"
				switch {
				case i == len(digests):
					kind = "referrers" // what refers to the private manifest
				case d == s.privManifest:
					kind = "manifests"
				}
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					path := fmt.Sprintf(n.path, kind, d)
					req, _ := http.NewRequest(method, s.mirror.URL+path, nil)
					req.Header.Set("Accept", acceptAll)
					if c.authz != "" {
						req.Header.Set("Authorization", c.authz)
					}
					if n.host != "" {
						req.Host = n.host
					}
					resp, err := s.client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					var body bytes.Buffer
					_, _ = body.ReadFrom(resp.Body)
					resp.Body.Close()
					if kind == "referrers" {
						// Another repository's list (empty) reveals nothing;
						// naming the private signature would.
						if bytes.Contains(body.Bytes(), secrets[s.privReferrer.String()]) {
							t.Errorf("%s %s %s (Host %q): lists the private manifest's signature", c.name, method, path, n.host)
						}
						continue
					}
					if resp.StatusCode < 400 {
						t.Errorf("%s %s %s (Host %q): %d, want a refusal", c.name, method, path, n.host, resp.StatusCode)
					}
					if sec := secrets[d.String()]; len(sec) > 0 && bytes.Contains(body.Bytes(), sec) {
						t.Errorf("%s %s %s: the private blob's bytes in the answer", c.name, method, path)
					}
				}
			}
		}
	}
}

func TestAccessLogNamesUserNotCredentials(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := newAccessSite(t, func(o *Options, _ *cache.Options) { o.Logger = log })
	s.get("/v2/ghcr.io/myorg/app/manifests/v1", "Accept", acceptAll, "Authorization", basicAuth("bob", "bob-pw"))
	s.get("/v2/ghcr.io/myorg/app/manifests/v1", "Accept", acceptAll, "Authorization", basicAuth("ci", "ci-pw"))
	s.mirror.Close() // waits for the handlers, which log last
	out := logs.String()
	for _, want := range []string{"user=bob", "status=403", "registry=ghcr.io", "user bob may not pull ghcr.io/myorg/app", "user=ci", "status=200"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"bob-pw", "ci-pw", "upstream-secret-5e1", basicAuth("ci", "ci-pw")[6:]} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds a credential %q:\n%s", secret, out)
		}
	}
}

func TestFailedLoginsGetTooManyRequests(t *testing.T) {
	a, err := auth.New(auth.Options{HtpasswdFile: writeHtpasswd(t, "ci", "ci-pw"), LoginFailures: 2})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, newFakeUpstream(t), func(o *Options, _ *cache.Options) { o.Auth = a })
	for range 2 {
		if r := e.get("/v2/", "Authorization", basicAuth("ci", "guess")); r.status != 401 {
			t.Fatalf("wrong password: %d", r.status)
		}
	}
	r := e.get("/v2/library/x/manifests/v1", "Authorization", basicAuth("ci", "ci-pw"))
	if r.status != http.StatusTooManyRequests || errorCode(t, r) != CodeTooManyRequests {
		t.Fatalf("after the failures: %d %s, want 429 TOOMANYREQUESTS", r.status, r.body)
	}
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
}
