package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/console"
	"github.com/pullcache/pullcache/stats"
)

// ruled signs in any user with the test token ("root" as an admin), and
// lets users other than root see docker.io/library/* only. A user
// removed is signed out.
type ruled struct {
	mu      *sync.Mutex
	removed map[string]bool
}

func newRuled() ruled { return ruled{mu: &sync.Mutex{}, removed: map[string]bool{}} }

func (r ruled) Authenticate(_ *http.Request, user, secret string) (console.Identity, error) {
	if secret != token || user == "" {
		return console.Identity{}, console.ErrBadLogin
	}
	return console.Identity{Name: user, User: user, Admin: user == "root"}, nil
}

func (ruled) Form() console.LoginForm { return console.LoginForm{Users: true} }

func (r ruled) Access(id console.Identity) (console.MayPull, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed[id.User] {
		return nil, false
	}
	return func(registry, repository string) bool {
		return registry == "docker.io" && strings.HasPrefix(repository, "library/")
	}, true
}

func (r ruled) remove(user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed[user] = true
}

// ruledEnv holds docker.io/library/app:v1, which bob may see, and
// ghcr.io/org/secret:v1, which he may not.
func ruledEnv(t *testing.T) (*env, ruled) {
	t.Helper()
	r := newRuled()
	e := newEnv(t, r)
	importOwn(t, e.store, "public", "app:v1")
	importOwn(t, e.store, "secret", "ghcr.io/org/secret:v1")
	return e, r
}

const secretRef = "ghcr.io/org/secret:v1"

func TestNonAdminsSeeWhatTheRulesLetThemPull(t *testing.T) {
	e, _ := ruledEnv(t)
	e.stats.Answered(stats.Answer{Route: "manifest", Method: "GET", Status: 502, Path: "/v2/org/secret/manifests/v2", Error: "UNAVAILABLE: org/secret"})
	b := e.signedInAs("bob")
	for _, p := range []string{"/ui/", "/ui/live", "/ui/browse", "/ui/browse?registry=ghcr.io", "/ui/browse?q=secret", "/ui/browse?q=*/*:*", "/ui/export"} {
		a := b.get(p)
		wantStatus(t, p, a, http.StatusOK)
		hasNot(t, p, a, "org/secret", `registry=ghcr.io"`, ">ghcr.io<")
	}
	has(t, "browse", b.get("/ui/browse"), "docker.io/library/app")
	has(t, "search", b.get("/ui/browse?q=app"), ">docker.io/library/app:v1</a>")
	has(t, "export", b.get("/ui/export"), `value="docker.io/library/app:v1"`)
	hasNot(t, "export", b.get("/ui/export"), `name="all"`)
	hasNot(t, "overview", b.get("/ui/"), `id="upstreams"`, `id="errors-table"`, `href="/ui/maintenance"`, `href="/ui/upload"`)

	for _, p := range []string{"/ui/image?ref=" + secretRef, "/ui/repo?name=ghcr.io/org/secret", "/ui/image?ref=ghcr.io/org/none:v1"} {
		a := b.get(p)
		wantStatus(t, p, a, http.StatusForbidden)
		has(t, p, a, "do not let bob pull")
	}
	wantStatus(t, "an image bob may see", b.get("/ui/image?ref=app:v1"), http.StatusOK)
	wantStatus(t, "a repository bob may see", b.get("/ui/repo?name=docker.io/library/app"), http.StatusOK)

	var imgs []admin.Image
	a := b.get("/ui/api/images")
	if err := json.Unmarshal([]byte(a.body), &imgs); err != nil || len(imgs) != 1 || imgs[0].Name != "docker.io/library/app:v1" {
		t.Errorf("GET /ui/api/images as bob: %s (%v), want only docker.io/library/app:v1", a.body, err)
	}
	var st admin.Stats
	if err := json.Unmarshal([]byte(b.get("/ui/api/stats").body), &st); err != nil || len(st.Errors) != 0 || len(st.Upstreams) != 0 {
		t.Errorf("GET /ui/api/stats as bob: errors %v upstreams %v (%v), want neither", st.Errors, st.Upstreams, err)
	}
	for _, p := range []string{"/ui/api/image?image=" + secretRef, "/ui/api/history?image=" + secretRef,
		"/ui/api/export?image=" + secretRef, "/ui/api/export?image=app:v1&image=" + secretRef, "/ui/api/export?all=1",
		"/ui/api/pins", "/ui/api/info"} {
		wantStatus(t, p, b.get(p), http.StatusForbidden)
	}
	for _, p := range []string{"/ui/api/image?image=app:v1", "/ui/api/history?image=app:v1", "/ui/api/df", "/ui/api/export?image=app:v1"} {
		wantStatus(t, p, b.get(p), http.StatusOK)
	}
	wantStatus(t, "an unparsable name", b.get("/ui/api/image?image=NOT%20A%20NAME"), http.StatusBadRequest)

	root := e.signedInAs("root")
	has(t, "browse as an admin", root.get("/ui/browse"), "ghcr.io")
	has(t, "overview as an admin", root.get("/ui/"), `id="errors-table"`, "org/secret")
	wantStatus(t, "an admin's image page", root.get("/ui/image?ref="+secretRef), http.StatusOK)
}

// TestNonAdminsChangeNothing: every page and action that changes the
// cache is refused to a user who is not an admin, with a valid session
// and CSRF token, and changes nothing.
func TestNonAdminsChangeNothing(t *testing.T) {
	e, _ := ruledEnv(t)
	b := e.signedInAs("bob")
	for _, p := range []string{"/ui/upload", "/ui/warm", "/ui/maintenance"} {
		a := b.get(p)
		wantStatus(t, p, a, http.StatusForbidden)
		has(t, p, a, "Only admins may")
	}
	for _, p := range []string{"/ui/pin", "/ui/unpin", "/ui/rm", "/ui/gc"} {
		wantStatus(t, "POST "+p, b.post(p, url.Values{"image": {"docker.io/library/app:v1"}, "confirm": {"yes"}}), http.StatusForbidden)
	}
	for _, p := range []string{"/ui/api/pin", "/ui/api/unpin", "/ui/api/rm", "/ui/api/gc", "/ui/api/verify", "/ui/api/warm", "/ui/api/import"} {
		a := b.do(http.MethodPost, p, strings.NewReader(`{"images":["app:v1"]}`), "Origin", e.srv.URL, "X-CSRF-Token", b.csrf)
		wantStatus(t, "POST "+p, a, http.StatusForbidden)
	}
	img, ok := listed(t, e.store, "docker.io/library/app:v1")
	if !ok || !img.Pinned {
		t.Errorf("after the refusals: %+v %v, want the image there and still pinned", img, ok)
	}
	page := b.get("/ui/image?ref=app:v1")
	hasNot(t, "image page", page, `id="image-actions"`, `formaction="/ui/rm"`)
	hasNot(t, "repo page", b.get("/ui/repo?name=docker.io/library/app"), `id="rm-selected"`, `name="image"`)
}

func TestARemovedUserIsSignedOut(t *testing.T) {
	e, r := ruledEnv(t)
	b := e.signedInAs("bob")
	wantStatus(t, "before", b.get("/ui/"), http.StatusOK)
	r.remove("bob")
	if a := b.get("/ui/browse"); a.status != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/ui/login") {
		t.Errorf("after the user was removed: status %d to %q, want the login", a.status, a.header.Get("Location"))
	}
	if a := b.get("/ui/api/images"); a.status != http.StatusUnauthorized {
		t.Errorf("the API after the user was removed: status %d, want 401", a.status)
	}
}

// throttled refuses every login as an address over its budget.
type throttled struct{}

func (throttled) Authenticate(*http.Request, string, string) (console.Identity, error) {
	return console.Identity{}, &console.Throttled{RetryAfter: 7 * time.Second}
}
func (throttled) Form() console.LoginForm { return console.LoginForm{Users: true, Token: true} }

func TestThrottledLoginsAre429(t *testing.T) {
	e := newEnv(t, throttled{})
	a := e.browser().loginAs("bob", "pw")
	wantStatus(t, "login", a, http.StatusTooManyRequests)
	if got := a.header.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After %q, want 7", got)
	}
	has(t, "login", a, "Too many failed sign-ins", "7s")
	has(t, "login form", e.browser().get("/ui/login"), `name="user"`, "Leave the user empty")
}

// TestEveryActionNeedsTheCSRFToken: the maintenance actions refuse a
// post without the session's token, with a wrong one and from another
// site, and change nothing.
func TestEveryActionNeedsTheCSRFToken(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	importOwn(t, e.store, "kept", "kept:v1")
	b := e.signedIn()
	form := url.Values{"image": {"docker.io/library/kept:v1"}, "confirm": {"yes"}}
	for _, p := range []string{"/ui/pin", "/ui/unpin", "/ui/rm", "/ui/gc", "/ui/api/pin", "/ui/api/unpin", "/ui/api/rm", "/ui/api/gc", "/ui/api/verify"} {
		for _, c := range forged(e, b) {
			h := append([]string{"Content-Type", "application/x-www-form-urlencoded"}, c.header...)
			a := b.do(http.MethodPost, p, strings.NewReader(form.Encode()), h...)
			wantStatus(t, "POST "+p+", "+c.name, a, http.StatusForbidden)
		}
	}
	if img, ok := listed(t, e.store, "docker.io/library/kept:v1"); !ok || !img.Pinned {
		t.Errorf("after the refused posts: %+v %v", img, ok)
	}
}

func TestLoginFormAsksWhatTheAuthenticatorTakes(t *testing.T) {
	for _, c := range []struct {
		auth       console.Logins
		user, hint bool
	}{
		{tokenAuth{}, false, false},
		{newRuled(), true, false},
		{throttled{}, true, true},
	} {
		page := newEnv(t, c.auth).browser().get("/ui/login")
		if got := strings.Contains(page.body, `name="user"`); got != c.user {
			t.Errorf("%T: user field %v, want %v", c.auth, got, c.user)
		}
		if got := strings.Contains(page.body, "Leave the user empty"); got != c.hint {
			t.Errorf("%T: token hint %v, want %v", c.auth, got, c.hint)
		}
	}
}
