package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
	"github.com/pullcache/pullcache/config"
	"github.com/pullcache/pullcache/console"
)

const consoleAdminToken = "0123456789abcdef-token"

// writeHtpasswd writes users, each with the password USER-pw.
func writeHtpasswd(t *testing.T, path string, users ...string) {
	t.Helper()
	var lines []string
	for _, u := range users {
		h, _ := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		lines = append(lines, u+":"+string(h))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// consoleConfig has logins for alice (an admin) and bob, rules that keep
// ghcr.io/org/secret to alice, and the admin token.
func consoleConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, cfg.Auth.Htpasswd, "alice", "bob")
	cfg.Auth.Admins = []string{"alice"}
	cfg.Access = []config.AccessRule{
		{Registries: []string{"ghcr.io"}, Repositories: []string{"org/secret"}, Users: []string{"alice"}},
		{Users: []string{"*"}},
	}
	cfg.AdminToken = consoleAdminToken
	return cfg
}

// consoleOf serves the console as serve builds it, over a store holding
// docker.io/library/app:v1 and ghcr.io/org/secret:v1.
func consoleOf(t *testing.T, cfg config.Config) http.Handler {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	store, err := openStore(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for i, name := range []string{"app:v1", "ghcr.io/org/secret:v1"} {
		im := archivetest.LegacyImage{RepoTags: []string{name}, Layers: [][]byte{archivetest.Layer(t, "layer/"+string(rune('a'+i)))}}
		if _, err := admin.ImportReader(store, bytes.NewReader(archivetest.Tar(t, archivetest.LegacySave(im)...)), archive.Options{TempDir: t.TempDir()}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	logins, err := newLogins(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := consoleHandler(cfg, store, "", nil, log, logins)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var loginCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// consoleLogin fills in the console's login form from addr and returns
// the answer, whose cookies hold the session on success.
func consoleLogin(t *testing.T, h http.Handler, addr, user, secret string) *httptest.ResponseRecorder {
	t.Helper()
	get := httptest.NewRequest(http.MethodGet, "http://mirror.lan/ui/login", nil)
	get.RemoteAddr = addr
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, get)
	m := loginCSRF.FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("no login form: %d %s", rec.Code, rec.Body)
	}
	form := url.Values{"csrf": {m[1]}, "user": {user}, "secret": {secret}}
	post := httptest.NewRequest(http.MethodPost, "http://mirror.lan/ui/login", strings.NewReader(form.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	post.Header.Set("Origin", "http://mirror.lan")
	post.RemoteAddr = addr
	for _, c := range rec.Result().Cookies() {
		post.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, post)
	return rec
}

// consoleGet fetches path with the session of a successful login.
func consoleGet(h http.Handler, login *httptest.ResponseRecorder, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "http://mirror.lan"+path, nil)
	req.RemoteAddr = "192.0.2.1:1234"
	for _, c := range login.Result().Cookies() {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestConsoleLoginsAdmitEveryUser(t *testing.T) {
	cfg := consoleConfig(t)
	logins, err := newLogins(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c := newConsoleLogins(cfg, logins)
	if f := c.Form(); !f.Users || !f.Token {
		t.Errorf("form %+v, want a user name and the token", f)
	}
	r := httptest.NewRequest(http.MethodPost, "/ui/login", nil)
	if id, err := c.Authenticate(r, "alice", "alice-pw"); err != nil || !id.Admin || id.User != "alice" {
		t.Errorf("admin alice: %+v %v", id, err)
	}
	if id, err := c.Authenticate(r, "bob", "bob-pw"); err != nil || id.Admin || id.User != "bob" {
		t.Errorf("user bob: %+v %v, want signed in, not an admin", id, err)
	}
	if id, err := c.Authenticate(r, "", consoleAdminToken); err != nil || !id.Admin || id.User != "" {
		t.Errorf("admin token: %+v %v", id, err)
	}
	for _, tc := range [][2]string{{"bob", "wrong"}, {"nobody", "x"}, {"", "wrong-token"}} {
		if _, err := c.Authenticate(r, tc[0], tc[1]); !errors.Is(err, console.ErrBadLogin) {
			t.Errorf("%q: %v, want ErrBadLogin", tc[0], err)
		}
	}
	tokenOnly := newConsoleLogins(config.Config{AdminToken: consoleAdminToken}, nil)
	if f := tokenOnly.Form(); f.Users || !f.Token {
		t.Errorf("token only: form %+v", f)
	}
	if _, err := tokenOnly.Authenticate(r, "bob", "bob-pw"); !errors.Is(err, console.ErrBadLogin) {
		t.Errorf("a user without logins: %v", err)
	}
}

// TestAConsoleLoginEndsWithItsPassword: a session's login stands while
// the user's htpasswd entry is the one it proved (auth's
// TestAChangedPasswordChangesTheCredential shows an edited entry changes
// the credential).
func TestAConsoleLoginEndsWithItsPassword(t *testing.T) {
	cfg := consoleConfig(t)
	logins, err := newLogins(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c := newConsoleLogins(cfg, logins)
	bob, err := c.Authenticate(httptest.NewRequest(http.MethodPost, "/ui/login", nil), "bob", "bob-pw")
	if err != nil || bob.Credential == "" {
		t.Fatalf("bob's login: %+v %v", bob, err)
	}
	if _, ok := c.Access(bob); !ok {
		t.Error("bob's login does not stand")
	}
	stale := bob
	stale.Credential = "an-earlier-entry"
	if _, ok := c.Access(stale); ok {
		t.Error("a login proved with another password still stands")
	}
	if _, ok := c.Access(console.Identity{Name: "admin", Admin: true}); !ok {
		t.Error("the admin token's login does not stand")
	}
}

// TestConsoleLoginsRateLimitedPerAddress: failed sign-ins count per
// client address, in the same budget as the registry's Basic logins; an
// address over it is refused with 429, another address is not.
func TestConsoleLoginsRateLimitedPerAddress(t *testing.T) {
	cfg := consoleConfig(t)
	cfg.Auth.LoginFailures, cfg.Auth.LoginWindow = 3, config.Duration(time.Minute)
	h := consoleOf(t, cfg)
	const guesser, other = "192.0.2.7:4000", "192.0.2.8:4000"
	for i, secret := range []string{"guess1", "guess2"} {
		if rec := consoleLogin(t, h, guesser, "bob", secret); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, want 401", i, rec.Code)
		}
	}
	if rec := consoleLogin(t, h, guesser, "", "not-the-token"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("a wrong token: status %d, want 401", rec.Code)
	}
	rec := consoleLogin(t, h, guesser, "bob", "bob-pw")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the right password after 3 failures: status %d, want 429", rec.Code)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if rec := consoleLogin(t, h, guesser, "", consoleAdminToken); rec.Code != http.StatusTooManyRequests {
		t.Errorf("the right token after 3 failures: status %d, want 429", rec.Code)
	}
	if rec := consoleLogin(t, h, other, "bob", "bob-pw"); rec.Code != http.StatusSeeOther {
		t.Errorf("another address: status %d, want signed in", rec.Code)
	}

	tokenOnly := config.Default()
	tokenOnly.Data = t.TempDir()
	tokenOnly.AdminToken = consoleAdminToken
	tokenOnly.Auth.LoginFailures = 2
	th := consoleOf(t, tokenOnly)
	for range 2 {
		consoleLogin(t, th, guesser, "", "guess")
	}
	if rec := consoleLogin(t, th, guesser, "", consoleAdminToken); rec.Code != http.StatusTooManyRequests {
		t.Errorf("logins off, the token after 2 failures: status %d, want 429", rec.Code)
	}
}

// TestConsoleAppliesTheAccessRules: a user sees what the rules let them
// pull, and no more; an admin sees everything. (A user removed from the
// htpasswd file is signed out: auth's TestUserReadsTheFilesNow and the
// console's TestARemovedUserIsSignedOut.)
func TestConsoleAppliesTheAccessRules(t *testing.T) {
	cfg := consoleConfig(t)
	h := consoleOf(t, cfg)
	bob := consoleLogin(t, h, "192.0.2.1:1", "bob", "bob-pw")
	if bob.Code != http.StatusSeeOther {
		t.Fatalf("bob's login: %d %s", bob.Code, bob.Body)
	}
	if body := consoleGet(h, bob, "/ui/browse").Body.String(); strings.Contains(body, "ghcr.io/org/secret") || !strings.Contains(body, "docker.io/library/app") {
		t.Errorf("bob's browse page lists the wrong repositories:\n%s", body)
	}
	if rec := consoleGet(h, bob, "/ui/image?ref=ghcr.io/org/secret:v1"); rec.Code != http.StatusForbidden {
		t.Errorf("bob's page of the secret image: status %d, want 403", rec.Code)
	}
	if rec := consoleGet(h, bob, "/ui/api/images"); strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("bob's image list: %s", rec.Body)
	}
	if rec := consoleGet(h, bob, "/ui/maintenance"); rec.Code != http.StatusForbidden {
		t.Errorf("bob's maintenance page: status %d, want 403", rec.Code)
	}
	alice := consoleLogin(t, h, "192.0.2.1:2", "alice", "alice-pw")
	if rec := consoleGet(h, alice, "/ui/image?ref=ghcr.io/org/secret:v1"); rec.Code != http.StatusOK {
		t.Errorf("alice's page of the secret image: status %d, want 200", rec.Code)
	}
	if rec := consoleGet(h, alice, "/ui/maintenance"); rec.Code != http.StatusOK {
		t.Errorf("alice's maintenance page: status %d, want 200", rec.Code)
	}

}
