package console_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/console"
	"github.com/pullcache/pullcache/stats"
)

const token = "console-test-token-0123"

// tokenAuth admits whoever sends token, as an admin.
type tokenAuth struct{}

func (tokenAuth) Authenticate(_ *http.Request, _, secret string) (console.Identity, error) {
	if secret != token {
		return console.Identity{}, console.ErrBadLogin
	}
	return console.Identity{Name: "admin", Admin: true}, nil
}
func (tokenAuth) Form() console.LoginForm { return console.LoginForm{Token: true} }

type env struct {
	t     *testing.T
	store *cache.Store
	stats *stats.Recorder
	srv   *httptest.Server
}

func newEnv(t *testing.T, auth console.Logins) *env {
	t.Helper()
	return newEnvWith(t, auth, cache.Options{Dir: t.TempDir()})
}

// newEnvWith serves the console over a store opened with opts.
func newEnvWith(t *testing.T, auth console.Logins, opts cache.Options) *env {
	t.Helper()
	return newEnvOf(t, auth, opts, nil)
}

// newEnvOf is newEnvWith for a member of a cluster: members lists them
// (nil: no cluster).
func newEnvOf(t *testing.T, auth console.Logins, opts cache.Options, members func() []admin.MemberHealth) *env {
	t.Helper()
	store, err := cache.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rec := stats.New(nil)
	a := admin.New(admin.Options{Store: store, TempDir: t.TempDir(), UploadLimit: 1 << 20, Stats: rec, Members: members})
	c, err := console.New(console.Options{Admin: a, Logins: auth, UploadLimit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return &env{t: t, store: store, stats: rec, srv: srv}
}

// browser is a client with cookies that does not follow redirects.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, body io.Reader, header ...string) answer {
	b.e.t.Helper()
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(out)}
}

func (b *browser) get(path string) answer { return b.do(http.MethodGet, path, nil) }

var (
	formCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	metaCSRF = regexp.MustCompile(`name="csrf-token" content="([^"]+)"`)
)

func (b *browser) postForm(path string, form url.Values, header ...string) answer {
	b.e.t.Helper()
	h := append([]string{"Content-Type", "application/x-www-form-urlencoded", "Origin", b.e.srv.URL}, header...)
	return b.do(http.MethodPost, path, strings.NewReader(form.Encode()), h...)
}

// login signs in with secret and returns the answer to the form.
func (b *browser) login(secret string) answer { return b.loginAs("", secret) }

// loginAs signs in as user with secret.
func (b *browser) loginAs(user, secret string) answer {
	b.e.t.Helper()
	page := b.get("/ui/login")
	m := formCSRF.FindStringSubmatch(page.body)
	if m == nil {
		b.e.t.Fatalf("login form without a CSRF token:\n%s", page.body)
	}
	return b.postForm("/ui/login", url.Values{"csrf": {m[1]}, "user": {user}, "secret": {secret}, "next": {"/ui/"}})
}

func (e *env) signedIn() *browser { return e.signedInAs("") }

// signedInAs is a browser signed in as user (with the test token).
func (e *env) signedInAs(user string) *browser {
	e.t.Helper()
	b := e.browser()
	if a := b.loginAs(user, token); a.status != http.StatusSeeOther {
		e.t.Fatalf("login: status %d\n%s", a.status, a.body)
	}
	page := b.get("/ui/")
	m := metaCSRF.FindStringSubmatch(page.body)
	if m == nil {
		e.t.Fatalf("overview without a CSRF token (status %d)", page.status)
	}
	b.csrf = m[1]
	return b
}

func (e *env) importLegacy(tags ...string) []admin.Imported {
	e.t.Helper()
	return importInto(e.t, e.store, tags...)
}

// importInto imports archivetest's two-layer image under tags.
func importInto(t *testing.T, s *cache.Store, tags ...string) []admin.Imported {
	t.Helper()
	return importSave(t, s, archivetest.TwoLayerImage(t, tags...))
}

// importOwn imports an image whose layer is its own (content names it),
// so that two of them share no blob, under tags.
func importOwn(t *testing.T, s *cache.Store, content string, tags ...string) {
	t.Helper()
	importSave(t, s, archivetest.LegacyImage{RepoTags: tags, Layers: [][]byte{archivetest.Layer(t, "own/"+content)}})
}

func importSave(t *testing.T, s *cache.Store, im archivetest.LegacyImage) []admin.Imported {
	t.Helper()
	b := archivetest.Tar(t, archivetest.LegacySave(im)...)
	done, err := admin.ImportReader(s, bytes.NewReader(b), archive.Options{TempDir: t.TempDir()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return done
}

// post sends a form with the session's CSRF token from this site.
func (b *browser) post(path string, form url.Values) answer {
	b.e.t.Helper()
	form.Set("csrf", b.csrf)
	return b.postForm(path, form)
}

var pages = []string{"/ui/", "/ui/live", "/ui/live?span=day", "/ui/?span=day", "/ui/browse", "/ui/browse?q=app",
	"/ui/browse?registry=docker.io", "/ui/repo?name=docker.io/library/app", "/ui/image?ref=docker.io/library/app:v1",
	"/ui/upload", "/ui/warm", "/ui/export", "/ui/maintenance"}

func TestEveryPageNeedsASession(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	b := e.browser()
	for _, p := range pages {
		a := b.get(p)
		if a.status != http.StatusSeeOther {
			t.Errorf("%s: status %d, want a redirect to the login", p, a.status)
			continue
		}
		if loc := a.header.Get("Location"); !strings.HasPrefix(loc, "/ui/login?next=") {
			t.Errorf("%s: redirected to %q", p, loc)
		}
	}
	for _, p := range []string{"/ui/api/stats", "/ui/api/images", "/ui/api/export?all=1"} {
		if a := b.get(p); a.status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", p, a.status)
		}
	}
	if a := b.do(http.MethodPost, "/ui/api/import", strings.NewReader("x")); a.status != http.StatusUnauthorized {
		t.Errorf("import without a session: status %d, want 401", a.status)
	}
}

func TestEveryPageRendersSignedIn(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	e.importLegacy("app:v1")
	e.stats.Answered(stats.Answer{Route: "manifest", Method: "GET", Status: 200, Source: "hit", Bytes: 10})
	e.stats.Answered(stats.Answer{Route: "manifest", Method: "GET", Status: 200, Source: "miss", Bytes: 10})
	b := e.signedIn()
	for _, p := range pages {
		a := b.get(p)
		if a.status != http.StatusOK {
			t.Errorf("%s: status %d\n%s", p, a.status, a.body)
		}
		if ct := a.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", p, ct)
		}
		if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: Content-Security-Policy %q", p, csp)
		}
	}
	ov := b.get("/ui/")
	if !strings.Contains(ov.body, `id="hit-ratio">50.0%`) {
		t.Errorf("overview does not show the 50%% hit ratio of the statistics")
	}
	if !strings.Contains(ov.body, "<polyline") {
		t.Error("overview has no chart")
	}
	img := b.get("/ui/image?ref=docker.io/library/app:v1")
	for _, want := range []string{"crane pull --insecure " + strings.TrimPrefix(e.srv.URL, "http://") + "/library/app:v1", `id="layers"`, "linux/amd64"} {
		if !strings.Contains(img.body, want) {
			t.Errorf("image page lacks %q", want)
		}
	}
	if a := b.get("/ui/image?ref=docker.io/library/none:1"); a.status != http.StatusNotFound {
		t.Errorf("unknown image: status %d, want 404", a.status)
	}
	if a := b.get("/ui/nowhere"); a.status != http.StatusNotFound {
		t.Errorf("unknown page: status %d, want 404", a.status)
	}
}

func TestStaticAssetsNeedNoSession(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	for _, p := range []string{"/ui/static/console.css", "/ui/static/console.js"} {
		if a := e.browser().get(p); a.status != http.StatusOK {
			t.Errorf("%s: status %d", p, a.status)
		}
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	t.Run("wrong token", func(t *testing.T) {
		a := e.browser().login("not-the-token-at-all")
		if a.status != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", a.status)
		}
		if !strings.Contains(a.body, "Wrong token") {
			t.Error("no message")
		}
	})
	t.Run("no form token", func(t *testing.T) {
		b := e.browser()
		b.get("/ui/login")
		if a := b.postForm("/ui/login", url.Values{"secret": {token}}); a.status != http.StatusForbidden {
			t.Errorf("status %d, want 403", a.status)
		}
	})
	t.Run("another site's form", func(t *testing.T) {
		b := e.browser()
		m := formCSRF.FindStringSubmatch(b.get("/ui/login").body)
		a := b.postForm("/ui/login", url.Values{"csrf": {m[1]}, "secret": {token}}, "Origin", "http://evil.example")
		if a.status != http.StatusForbidden {
			t.Errorf("status %d, want 403", a.status)
		}
	})
	t.Run("cookie", func(t *testing.T) {
		b := e.browser()
		a := b.login(token)
		var session *http.Cookie
		for _, c := range (&http.Response{Header: a.header}).Cookies() {
			if c.Name == "pullcache_session" && c.Value != "" {
				session = c
			}
		}
		if session == nil {
			t.Fatal("no session cookie")
		}
		if !session.HttpOnly {
			t.Error("session cookie readable by scripts")
		}
		if session.SameSite != http.SameSiteStrictMode {
			t.Errorf("SameSite %v, want Strict", session.SameSite)
		}
		if strings.Contains(session.Value, token) {
			t.Error("the token itself is in the cookie")
		}
	})
	t.Run("next stays in the console", func(t *testing.T) {
		b := e.browser()
		m := formCSRF.FindStringSubmatch(b.get("/ui/login").body)
		a := b.postForm("/ui/login", url.Values{"csrf": {m[1]}, "secret": {token}, "next": {"https://evil.example/ui/"}})
		if loc := a.header.Get("Location"); loc != "/ui/" {
			t.Errorf("redirected to %q", loc)
		}
	})
	t.Run("logout", func(t *testing.T) {
		b := e.signedIn()
		if a := b.postForm("/ui/logout", url.Values{}); a.status != http.StatusForbidden {
			t.Errorf("logout without the CSRF token: status %d, want 403", a.status)
		}
		if a := b.postForm("/ui/logout", url.Values{"csrf": {b.csrf}}); a.status != http.StatusSeeOther {
			t.Errorf("logout: status %d", a.status)
		}
		if a := b.get("/ui/"); a.status != http.StatusSeeOther {
			t.Errorf("after logout: status %d, want a redirect to the login", a.status)
		}
	})
}

// forgedCase is a state-changing request without the session's CSRF
// token, or from elsewhere: headers to send.
type forgedCase struct {
	name   string
	header []string
}

// forged are the ways a post can lack the session's proof: no token, a
// wrong one, another site's page, a cross-site fetch.
func forged(e *env, b *browser) []forgedCase {
	return []forgedCase{
		{"no token", []string{"Origin", e.srv.URL}},
		{"wrong token", []string{"Origin", e.srv.URL, "X-CSRF-Token", "wrong"}},
		{"other site", []string{"Origin", "http://evil.example", "X-CSRF-Token", b.csrf}},
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site", "X-CSRF-Token", b.csrf}},
		{"same-site fetch", []string{"Sec-Fetch-Site", "same-site", "Origin", e.srv.URL, "X-CSRF-Token", b.csrf}},
	}
}

// TestStateChangesNeedTheCSRFToken: every POST the console accepts is
// refused without the session's token, with a wrong one, and from
// another site.
func TestStateChangesNeedTheCSRFToken(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	b := e.signedIn()
	saved := archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, "app:v1"))...)
	posts := []struct {
		path string
		body []byte
	}{
		{"/ui/api/import", saved},
		{"/ui/api/warm", []byte(`{"images":["app:v1"]}`)},
		{"/ui/logout", nil},
	}
	for _, p := range posts {
		for _, c := range forged(e, b) {
			a := b.do(http.MethodPost, p.path, bytes.NewReader(p.body), c.header...)
			if a.status != http.StatusForbidden {
				t.Errorf("POST %s, %s: status %d, want 403", p.path, c.name, a.status)
			}
		}
	}
	if files, _ := admin.List(e.store); len(files) != 0 {
		t.Fatalf("a refused import stored %v", files)
	}
	a := b.do(http.MethodPost, "/ui/api/import", bytes.NewReader(saved), "Origin", e.srv.URL, "X-CSRF-Token", b.csrf)
	if a.status != http.StatusOK {
		t.Fatalf("import with the token: status %d: %s", a.status, a.body)
	}
	if !strings.Contains(a.body, "docker.io/library/app:v1") {
		t.Errorf("import answered %s", a.body)
	}
}

type viewer struct{}

func (viewer) Authenticate(*http.Request, string, string) (console.Identity, error) {
	return console.Identity{Name: "viewer", User: "viewer"}, nil
}
func (viewer) Form() console.LoginForm { return console.LoginForm{Users: true} }

func TestOnlyAdminsChangeTheCache(t *testing.T) {
	e := newEnv(t, viewer{})
	b := e.signedIn()
	if a := b.get("/ui/api/stats"); a.status != http.StatusOK {
		t.Errorf("a viewer reading stats: status %d", a.status)
	}
	saved := archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, "app:v1"))...)
	a := b.do(http.MethodPost, "/ui/api/import", bytes.NewReader(saved), "Origin", e.srv.URL, "X-CSRF-Token", b.csrf)
	if a.status != http.StatusForbidden {
		t.Errorf("a viewer importing: status %d, want 403", a.status)
	}
	if !strings.Contains(b.get("/ui/login").body, `name="user"`) {
		t.Error("an authenticator asking for a user gets no user field")
	}
}

func TestConsoleOffWithoutAuthenticator(t *testing.T) {
	e := newEnv(t, nil)
	a := e.browser().get("/ui/")
	if a.status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", a.status)
	}
	if !strings.Contains(a.body, "admin_token") {
		t.Error("the page does not say how to turn the console on")
	}
}

// TestHostileNamesAreEscaped stores a repository, a tag and a referrer
// named to break out of HTML and checks every page shows them as text:
// lists, the repository and image pages (referrers, tag history), the
// maintenance page's pinned images and the delete preview.
func TestHostileNamesAreEscaped(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	e.importLegacy("app:v1")
	appDigest := mustTag(t, e.store, "library/app", "v1").Digest
	m, err := e.store.Manifest(appDigest)
	if err != nil {
		t.Fatal(err)
	}
	const evilRepo = `evil/"><script>alert(1)</script>`
	const evilTag = `<script>`
	if err := e.store.ImportImage(cache.Repo{Registry: "docker.io", Name: evilRepo}, []string{evilTag, `x" onmouseover="alert(1)`}, []*cache.Manifest{m}, time.Now()); err != nil {
		t.Fatal(err)
	}
	evil := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: archivetest.Digest([]byte("evil")), Size: 4,
		ArtifactType: `<script>alert(2)</script>`, Annotations: map[string]string{`"><script>alert(3)</script>`: `<img src=x onerror=alert(4)>`}}
	if err := e.store.AddReferrers(cache.Repo{Registry: "docker.io", Name: "library/app"}, appDigest, []v1.Descriptor{evil}, time.Now()); err != nil {
		t.Fatal(err)
	}
	b := e.signedIn()
	ref := "docker.io/" + evilRepo + ":" + evilTag
	pages := map[string]answer{}
	for _, p := range []string{"/ui/browse", "/ui/browse?q=" + url.QueryEscape("<script>"),
		"/ui/repo?name=" + url.QueryEscape("docker.io/"+evilRepo), "/ui/image?ref=" + url.QueryEscape(ref),
		"/ui/image?ref=docker.io/library/app:v1", "/ui/export", "/ui/maintenance"} {
		pages[p] = b.get(p)
	}
	pages["delete preview"] = b.post("/ui/rm", url.Values{"image": {ref}, "next": {"/ui/"}})
	for p, a := range pages {
		if strings.Contains(a.body, "<script>alert") || strings.Contains(a.body, "<img src=x") {
			t.Errorf("%s: a hostile name is in the page as markup", p)
		}
		if strings.Contains(a.body, `" onmouseover="`) || strings.Contains(a.body, `"><script`) {
			t.Errorf("%s: a hostile name broke out of an attribute", p)
		}
		if strings.Count(a.body, "<script") != 1 {
			t.Errorf("%s: %d script elements, want only the console's own", p, strings.Count(a.body, "<script"))
		}
	}
	for p, want := range map[string]string{"/ui/browse": "evil/&#34;&gt;&lt;script&gt;", "/ui/maintenance": "evil/&#34;&gt;&lt;script&gt;",
		"delete preview": "evil/&#34;&gt;&lt;script&gt;", "/ui/image?ref=docker.io/library/app:v1": "&lt;img src=x onerror=alert(4)&gt;"} {
		if !strings.Contains(pages[p].body, want) {
			t.Errorf("%s does not show the hostile name as text (%s)", p, want)
		}
	}
}

func mustTag(t *testing.T, s *cache.Store, repo, tag string) cache.Tag {
	t.Helper()
	tg, err := s.Tag(cache.Repo{Registry: "docker.io", Name: repo}, tag)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// TestLookingIsNotPulling: the image page must not make an image look
// recently pulled (eviction goes by last access).
func TestLookingIsNotPulling(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	e.importLegacy("app:v1")
	b := e.signedIn()
	b.get("/ui/image?ref=docker.io/library/app:v1")
	b.get("/ui/repo?name=docker.io/library/app")
	if at, ok := e.store.LastAccess(mustTag(t, e.store, "library/app", "v1").Digest); ok {
		t.Errorf("viewing the image recorded an access at %s", at)
	}
}
