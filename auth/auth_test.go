package auth

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// tlsState marks a request as having come over TLS.
var tlsState tls.ConnectionState

// clock is a settable clock for tokens, reloads and the login limiter.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// htpasswdLine is "user:bcrypt(password)" at bcrypt's lowest cost, which
// keeps tests fast and checks the same code as a real cost does.
func htpasswdLine(t testing.TB, user, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(h)
}

func writeFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fixture is an Authenticator over users alice (admin), bob and carol
// (group ops), with the given rules.
type fixture struct {
	a      *Authenticator
	clock  *clock
	passwd string
	groups string
}

func newFixture(t *testing.T, rules []Rule, mod ...func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{clock: &clock{now: time.Unix(1_700_000_000, 0)}}
	f.passwd = writeFile(t, filepath.Join(dir, "htpasswd"), strings.Join([]string{
		htpasswdLine(t, "alice", "alice-pw"),
		htpasswdLine(t, "bob", "bob-pw"),
		htpasswdLine(t, "carol", "carol-pw"),
	}, "\n")+"\n")
	f.groups = writeFile(t, filepath.Join(dir, "htgroup"), "ops: carol\n")
	opts := Options{HtpasswdFile: f.passwd, GroupFile: f.groups, Rules: rules, Admins: []string{"alice"}, Now: f.clock.Now, dummyCost: bcrypt.MinCost}
	for _, m := range mod {
		m(&opts)
	}
	var err error
	if f.a, err = New(opts); err != nil {
		t.Fatal(err)
	}
	return f
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func request(authz string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://mirror.lan:5000/v2/", nil)
	r.RemoteAddr = "192.0.2.7:40000"
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	return r
}

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		name, header   string
		user, password string
		token          string
		bad            bool
	}{
		{"basic", basic("ci", "s3cret"), "ci", "s3cret", "", false},
		{"basic, password with colons", basic("ci", "a:b:c"), "ci", "a:b:c", "", false},
		{"basic, empty password", basic("ci", ""), "ci", "", "", false},
		{"scheme case-insensitive", "bAsIc " + base64.StdEncoding.EncodeToString([]byte("u:p")), "u", "p", "", false},
		{"bearer", "Bearer abc.def-ghi_jkl", "", "", "abc.def-ghi_jkl", false},
		{"basic, no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), "", "", "", true},
		{"basic, empty user", basic("", "pw"), "", "", "", true},
		{"basic, control character in user", basic("a\nb", "pw"), "", "", "", true},
		{"basic, not base64", "Basic !!!", "", "", "", true},
		{"bearer with a space", "Bearer a b", "", "", "", true},
		{"bearer with a quote", `Bearer a"b`, "", "", "", true},
		{"no credentials", "Basic", "", "", "", true},
		{"unknown scheme", "Digest username=x", "", "", "", true},
		{"too long", "Bearer " + strings.Repeat("a", maxAuthorization), "", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseAuthorization(tc.header)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted %q as %+v", tc.header, c)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused %q: %v", tc.header, err)
			}
			if c.user != tc.user || c.password != tc.password || c.token != tc.token {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestMatchRepo(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"myorg/*", "myorg/app", true},
		{"myorg/*", "myorg/team/app", false},
		{"myorg/*", "myorg", false},
		{"myorg/**", "myorg/app", true},
		{"myorg/**", "myorg/team/app", true},
		{"myorg/**", "myorg", true},
		{"myorg/**", "other/app", false},
		{"**/app", "a/b/app", true},
		{"**/app", "app", true},
		{"**/app", "a/b/apps", false},
		{"library/*", "library/alpine", true},
		{"*/alpine", "library/alpine", true},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/b/c", false},
		{"app-?", "app-1", true},
	}
	for _, tc := range tests {
		if got := matchRepo(tc.pattern, tc.name); got != tc.want {
			t.Errorf("matchRepo(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestValidateRules(t *testing.T) {
	bad := []Rule{
		{Registries: []string{"["}},
		{Registries: []string{"ghcr.io/x"}},
		{Repositories: []string{"/abs"}},
		{Repositories: []string{"a//b"}},
		{Repositories: []string{"a/["}},
		{Repositories: []string{"**/a/**/b/**"}},
		{Users: []string{"a:b"}},
		{Groups: []string{""}},
	}
	for i, r := range bad {
		if err := ValidateRules([]Rule{r}); err == nil {
			t.Errorf("rule %d %+v accepted", i, r)
		}
	}
	err := ValidateRules([]Rule{{}, {Repositories: []string{"["}}})
	if err == nil || !strings.Contains(err.Error(), "access[1]") {
		t.Errorf("error does not name the rule: %v", err)
	}
	good := []Rule{{Registries: []string{"*.example.com", "docker.io"}, Repositories: []string{"myorg/**", "library/*"}, Users: []string{"*"}, Groups: []string{"ops"}}}
	if err := ValidateRules(good); err != nil {
		t.Error(err)
	}
}

// siteRules are the rules of TestDecide: public Docker Hub, a private
// ghcr.io organisation for ci (bob) and the ops group, and everything
// else of ghcr.io denied to all.
var siteRules = []Rule{
	{Registries: []string{"docker.io"}, Anonymous: true},
	{Registries: []string{"ghcr.io"}, Repositories: []string{"myorg/secret/**"}, Users: []string{"alice"}},
	{Registries: []string{"ghcr.io"}, Repositories: []string{"myorg/**"}, Users: []string{"bob"}, Groups: []string{"ops"}},
	{Registries: []string{"ghcr.io"}},
	{Registries: []string{"quay.io"}, Users: []string{"*"}},
}

func TestDecide(t *testing.T) {
	f := newFixture(t, siteRules)
	anon := Identity{Via: "anonymous"}
	user := func(name string) Identity { return f.a.identity(name, "basic") }
	tests := []struct {
		name     string
		id       Identity
		registry string
		repo     string
		want     int // 0: allowed
	}{
		{"anonymous, public registry", anon, "docker.io", "library/alpine", 0},
		{"user, public registry", user("bob"), "docker.io", "library/alpine", 0},
		{"anonymous, private repository", anon, "ghcr.io", "myorg/app", 401},
		{"listed user, private repository", user("bob"), "ghcr.io", "myorg/app", 0},
		{"listed user, nested private repository", user("bob"), "ghcr.io", "myorg/team/app", 0},
		{"group member, private repository", user("carol"), "ghcr.io", "myorg/app", 0},
		{"unlisted user, private repository", user("alice"), "ghcr.io", "myorg/app", 403},
		{"first match decides: bob not on the secret rule", user("bob"), "ghcr.io", "myorg/secret/x", 403},
		{"first match decides: alice on the secret rule", user("alice"), "ghcr.io", "myorg/secret/x", 0},
		{"a rule admitting no one denies", user("bob"), "ghcr.io", "other/app", 403},
		{"any user: authenticated", user("carol"), "quay.io", "x/y", 0},
		{"any user: not anonymous", anon, "quay.io", "x/y", 401},
		{"no rule matches: denied", user("alice"), "registry.k8s.io", "pause", 403},
		{"catalog, public registry", anon, "docker.io", "", 0},
		{"catalog needs a registry-wide rule", user("bob"), "ghcr.io", "", 403},
		{"catalog of quay.io for users", user("bob"), "quay.io", "", 0},
		{"API root, anonymous", anon, "", "", 401},
		{"API root, user", user("bob"), "", "", 0},
		{"trusted socket", Identity{Via: "trusted", Admin: true, User: "admin-socket"}, "ghcr.io", "myorg/secret/x", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := f.a.Decide(tc.id, Target{Registry: tc.registry, Repository: tc.repo, Name: tc.repo})
			got := 0
			if d != nil {
				got = d.Status
			}
			if got != tc.want {
				t.Errorf("Decide = %v, want status %d", d, tc.want)
			}
		})
	}
}

func TestDefaultRulesAuthenticatedOnly(t *testing.T) {
	f := newFixture(t, nil)
	if d := f.a.Decide(f.a.identity("bob", "basic"), Target{Registry: "ghcr.io", Repository: "any/thing", Name: "any/thing"}); d != nil {
		t.Errorf("user: %v", d)
	}
	if d := f.a.Decide(Identity{Via: "anonymous"}, Target{Registry: "docker.io", Repository: "library/alpine", Name: "alpine"}); d == nil || d.Status != 401 {
		t.Errorf("anonymous: %v, want 401", d)
	}
}

func TestAuthenticateBasic(t *testing.T) {
	f := newFixture(t, nil)
	id, d := f.a.Authenticate(request(basic("carol", "carol-pw")))
	if d != nil {
		t.Fatal(d)
	}
	if id.User != "carol" || id.Admin || len(id.Groups) != 1 || id.Groups[0] != "ops" {
		t.Errorf("identity %+v", id)
	}
	if id, _ := f.a.Authenticate(request(basic("alice", "alice-pw"))); !id.Admin {
		t.Errorf("alice is an admin: %+v", id)
	}
	for _, h := range []string{basic("carol", "wrong"), basic("nobody", "carol-pw"), "Basic x"} {
		if _, d := f.a.Authenticate(request(h)); d == nil || d.Status != 401 {
			t.Errorf("%q: %v, want 401", h, d)
		}
	}
	if id, d := f.a.Authenticate(request("")); d != nil || !id.Anonymous() || id.Via != "anonymous" {
		t.Errorf("no header: %+v %v", id, d)
	}
	r := request(basic("carol", "carol-pw"))
	r.Header.Add("Authorization", basic("alice", "alice-pw"))
	if _, d := f.a.Authenticate(r); d == nil || d.Status != 401 {
		t.Errorf("two Authorization headers: %v", d)
	}
}

func TestHtpasswdReload(t *testing.T) {
	f := newFixture(t, nil)
	if _, d := f.a.Authenticate(request(basic("bob", "bob-pw"))); d != nil {
		t.Fatal(d)
	}
	writeFile(t, f.passwd, htpasswdLine(t, "bob", "new-pw")+"\n"+htpasswdLine(t, "dave", "dave-pw")+"\n")
	writeFile(t, f.groups, "ops: bob dave\n")
	f.clock.advance(2 * time.Second) // past CheckInterval
	if _, d := f.a.Authenticate(request(basic("bob", "bob-pw"))); d == nil {
		t.Error("bob's old password still works after the file changed")
	}
	id, d := f.a.Authenticate(request(basic("bob", "new-pw")))
	if d != nil {
		t.Fatalf("bob's new password: %v", d)
	}
	if len(id.Groups) != 1 || id.Groups[0] != "ops" {
		t.Errorf("group file not reloaded: %v", id.Groups)
	}
	if _, d := f.a.Authenticate(request(basic("dave", "dave-pw"))); d != nil {
		t.Errorf("added user: %v", d)
	}
	if _, d := f.a.Authenticate(request(basic("alice", "alice-pw"))); d == nil {
		t.Error("removed user alice still logs in")
	}
}

func TestHtpasswdUnreadableKeepsLastGood(t *testing.T) {
	f := newFixture(t, nil)
	if err := os.Remove(f.passwd); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(2 * time.Second)
	if _, d := f.a.Authenticate(request(basic("bob", "bob-pw"))); d != nil {
		t.Errorf("a missing file dropped every user: %v", d)
	}
}

func TestHtpasswdOnlyBcrypt(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "htpasswd"), strings.Join([]string{
		"plain:plainpw", // plain text
		"md5:$apr1$x4iFa2Ml$6Gc8Cxdbt.g1qDrFvBuqm/",     // htpasswd -m
		"sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",         // htpasswd -s ("password")
		htpasswdLine(t, "ok", "ok-pw"), "", "# comment", // the one good line
	}, "\n"))
	a, err := New(Options{HtpasswdFile: path, dummyCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"plain", "plainpw"}, {"sha", "password"}} {
		if _, d := a.Authenticate(request(basic(c[0], c[1]))); d == nil {
			t.Errorf("%s entry accepted: only bcrypt is", c[0])
		}
	}
	if _, d := a.Authenticate(request(basic("ok", "ok-pw"))); d != nil {
		t.Errorf("bcrypt entry: %v", d)
	}
}

func TestFailedLoginsRateLimited(t *testing.T) {
	f := newFixture(t, nil, func(o *Options) { o.LoginFailures, o.LoginWindow = 3, 30*time.Second })
	for i := range 3 {
		if _, d := f.a.Authenticate(request(basic("bob", "guess"))); d == nil || d.Status != 401 {
			t.Fatalf("failure %d: %v, want 401", i, d)
		}
	}
	_, d := f.a.Authenticate(request(basic("bob", "bob-pw")))
	if d == nil || d.Status != http.StatusTooManyRequests {
		t.Fatalf("after 3 failures the right password: %v, want 429", d)
	}
	if s := RetryAfterSeconds(d); s < 1 || s > 10 {
		t.Errorf("Retry-After %ds, want one refill interval (10s)", s)
	}
	other := request(basic("bob", "bob-pw"))
	other.RemoteAddr = "192.0.2.8:1234"
	if _, d := f.a.Authenticate(other); d != nil {
		t.Errorf("another address is limited too: %v", d)
	}
	if id, d := f.a.Authenticate(request("")); d != nil || !id.Anonymous() {
		t.Errorf("an anonymous request from the limited address: %v", d)
	}
	f.clock.advance(10 * time.Second)
	if _, d := f.a.Authenticate(request(basic("bob", "bob-pw"))); d != nil {
		t.Errorf("after the refill interval: %v", d)
	}
}

func TestClientKeyIPv6Prefix(t *testing.T) {
	a, b := request(""), request("")
	a.RemoteAddr, b.RemoteAddr = "[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff::9]:2"
	if ClientKey(a) != ClientKey(b) {
		t.Errorf("%s and %s: one /64, two keys %s %s", a.RemoteAddr, b.RemoteAddr, ClientKey(a), ClientKey(b))
	}
}

func TestChallenge(t *testing.T) {
	f := newFixture(t, siteRules)
	d := f.a.Decide(Identity{Via: "anonymous"}, Target{Registry: "ghcr.io", Repository: "myorg/app", Name: "ghcr.io/myorg/app"})
	got := f.a.Challenge(request(""), d)
	want := `Bearer realm="http://mirror.lan:5000/auth/token",service="pullcache",scope="repository:ghcr.io/myorg/app:pull",error="insufficient_scope"`
	if got != want {
		t.Errorf("challenge\n got %s\nwant %s", got, want)
	}
	r := request("")
	r.Host = `evil"host`
	if got := f.a.Challenge(r, nil); !strings.Contains(got, `realm="http://localhost/auth/token"`) {
		t.Errorf("a malformed Host is echoed: %s", got)
	}
	r = request("")
	r.TLS = &tlsState
	if got := f.a.Challenge(r, nil); !strings.HasPrefix(got, `Bearer realm="https://mirror.lan:5000/auth/token"`) {
		t.Errorf("TLS request: %s", got)
	}
}

func decodeToken(t *testing.T, rec *httptest.ResponseRecorder) tokenResponse {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("token endpoint: %d %s", rec.Code, rec.Body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Token == "" || tr.Token != tr.AccessToken {
		t.Fatalf("token %q, access_token %q", tr.Token, tr.AccessToken)
	}
	return tr
}

func getToken(f *fixture, authz string, scopes ...string) *httptest.ResponseRecorder {
	q := ""
	for i, s := range scopes {
		if i == 0 {
			q += "?"
		} else {
			q += "&"
		}
		q += "service=pullcache&scope=" + s
	}
	r := httptest.NewRequest(http.MethodGet, "http://mirror.lan:5000/auth/token"+q, nil)
	r.RemoteAddr = "192.0.2.7:40000"
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	f.a.TokenHandler().ServeHTTP(rec, r)
	return rec
}

func TestTokenScopeAndExpiry(t *testing.T) {
	f := newFixture(t, siteRules)
	tr := decodeToken(t, getToken(f, basic("bob", "bob-pw"), "repository:ghcr.io/myorg/app:pull,push"))
	if tr.ExpiresIn != 300 {
		t.Errorf("expires_in %d, want 300", tr.ExpiresIn)
	}
	id, d := f.a.Authenticate(request("Bearer " + tr.Token))
	if d != nil {
		t.Fatal(d)
	}
	if id.User != "bob" || id.Via != "token" {
		t.Errorf("identity %+v", id)
	}
	in := Target{Registry: "ghcr.io", Repository: "myorg/app", Name: "ghcr.io/myorg/app"}
	if d := f.a.Decide(id, in); d != nil {
		t.Errorf("the scope's repository: %v", d)
	}
	out := Target{Registry: "ghcr.io", Repository: "myorg/other", Name: "ghcr.io/myorg/other"}
	d = f.a.Decide(id, out)
	if d == nil || d.Status != 401 || d.bearerError != "insufficient_scope" || d.scope != "repository:ghcr.io/myorg/other:pull" {
		t.Errorf("another repository: %+v, want 401 insufficient_scope", d)
	}
	if d := f.a.Decide(id, Target{Registry: "ghcr.io", Repository: "myorg/app", Name: "myorg/app"}); d == nil {
		t.Error("a token for ghcr.io/myorg/app admits the name myorg/app (another path, maybe another registry)")
	}
	f.clock.advance(299 * time.Second)
	if _, d := f.a.Authenticate(request("Bearer " + tr.Token)); d != nil {
		t.Errorf("before expiry: %v", d)
	}
	f.clock.advance(2 * time.Second)
	if _, d := f.a.Authenticate(request("Bearer " + tr.Token)); d == nil || d.bearerError != "invalid_token" {
		t.Errorf("after expiry: %v, want 401 invalid_token", d)
	}
}

func TestTokenStillDecidedByRules(t *testing.T) {
	f := newFixture(t, siteRules)
	// A token names a repository; it does not make it pullable.
	tr := decodeToken(t, getToken(f, basic("alice", "alice-pw"), "repository:ghcr.io/myorg/app:pull"))
	id, _ := f.a.Authenticate(request("Bearer " + tr.Token))
	if d := f.a.Decide(id, Target{Registry: "ghcr.io", Repository: "myorg/app", Name: "ghcr.io/myorg/app"}); d == nil || d.Status != 403 {
		t.Errorf("alice with a token for a repository she may not pull: %v, want 403", d)
	}
	anon := decodeToken(t, getToken(f, "", "repository:library/alpine:pull", "repository:ghcr.io/myorg/app:pull"))
	id, d := f.a.Authenticate(request("Bearer " + anon.Token))
	if d != nil || !id.Anonymous() {
		t.Fatalf("anonymous token: %+v %v", id, d)
	}
	if d := f.a.Decide(id, Target{Registry: "docker.io", Repository: "library/alpine", Name: "library/alpine"}); d != nil {
		t.Errorf("anonymous token, public repository: %v", d)
	}
	if d := f.a.Decide(id, Target{Registry: "ghcr.io", Repository: "myorg/app", Name: "ghcr.io/myorg/app"}); d == nil || d.Status != 401 {
		t.Errorf("anonymous token, private repository: %v, want 401", d)
	}
	if d := f.a.Decide(id, Target{}); d != nil {
		t.Errorf("anonymous token, API root: %v", d)
	}
}

func TestTokenOfRemovedUserRefused(t *testing.T) {
	f := newFixture(t, nil)
	tr := decodeToken(t, getToken(f, basic("bob", "bob-pw"), "repository:x/y:pull"))
	writeFile(t, f.passwd, htpasswdLine(t, "alice", "alice-pw")+"\n")
	f.clock.advance(2 * time.Second)
	if _, d := f.a.Authenticate(request("Bearer " + tr.Token)); d == nil {
		t.Error("a removed user's token still works")
	}
}

func TestTokenForgedOrForeign(t *testing.T) {
	f := newFixture(t, nil)
	other := newFixture(t, nil) // another process: another key
	tr := decodeToken(t, getToken(other, basic("bob", "bob-pw"), "repository:x/y:pull"))
	if _, d := f.a.Authenticate(request("Bearer " + tr.Token)); d == nil {
		t.Error("a token signed with another key is accepted")
	}
	// alg "none" with the same claims.
	parts := strings.Split(tr.Token, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	if _, d := f.a.Authenticate(request("Bearer " + none)); d == nil {
		t.Error("an unsigned token is accepted")
	}
}

func TestTokenEndpoint(t *testing.T) {
	f := newFixture(t, nil)
	if rec := getToken(f, basic("bob", "wrong"), "repository:x/y:pull"); rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("wrong password: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if rec := getToken(f, basic("bob", "bob-pw"), "nonsense"); rec.Code != 400 {
		t.Errorf("malformed scope: %d", rec.Code)
	}
	// docker login asks for a token with no scope.
	decodeToken(t, getToken(f, basic("bob", "bob-pw")))

	post := func(form string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "http://mirror.lan/auth/token", strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		f.a.TokenHandler().ServeHTTP(rec, r)
		return rec
	}
	// containerd's OAuth2 password grant.
	tr := decodeToken(t, post("grant_type=password&username=bob&password=bob-pw&service=pullcache&scope=repository%3Ax%2Fy%3Apull&client_id=containerd-client"))
	id, d := f.a.Authenticate(request("Bearer " + tr.Token))
	if d != nil || id.User != "bob" || !id.covers(Scope{Type: "repository", Name: "x/y", Actions: []string{"pull"}}) {
		t.Errorf("POSTed token: %+v %v", id, d)
	}
	if rec := post("grant_type=password&username=bob&password=nope"); rec.Code != 401 {
		t.Errorf("POST, wrong password: %d", rec.Code)
	}
	// No refresh tokens are issued; containerd falls back to GET on 400.
	if rec := post("grant_type=refresh_token&refresh_token=x"); rec.Code != 400 {
		t.Errorf("refresh_token grant: %d, want 400", rec.Code)
	}
	if rec := post(strings.Repeat("a", maxTokenForm+1)); rec.Code != 400 {
		t.Errorf("oversized form: %d, want 400", rec.Code)
	}
	// A token of ours is not a login.
	if rec := getToken(f, "Bearer "+tr.Token, "repository:x/y:pull"); rec.Code != 401 {
		t.Errorf("token for a token: %d, want 401", rec.Code)
	}
}

func TestProtect(t *testing.T) {
	f := newFixture(t, nil)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := IdentityFrom(r.Context())
		w.Write([]byte(id.User))
	})
	const token = "0123456789abcdef0123"
	h := f.a.Protect(ok, Policy{Admin: true, Token: token})
	tests := []struct {
		name, authz string
		status      int
		body        string
	}{
		{"admin user", basic("alice", "alice-pw"), 200, "alice"},
		{"admin token", "Bearer " + token, 200, "admin-token"},
		{"user, not admin", basic("bob", "bob-pw"), 403, ""},
		{"anonymous", "", 401, ""},
		{"wrong password", basic("alice", "x"), 401, ""},
		{"wrong token", "Bearer 0123456789abcdef0124", 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, request(tc.authz))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == 200 && rec.Body.String() != tc.body {
				t.Errorf("identity %q, want %q", rec.Body, tc.body)
			}
			if tc.status == 401 && rec.Header().Get("WWW-Authenticate") != `Basic realm="pullcache"` {
				t.Errorf("challenge %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	var off *Authenticator
	h = off.Protect(ok, Policy{Token: token})
	for authz, want := range map[string]int{"Bearer " + token: 200, "": 401, basic("alice", "alice-pw"): 401} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, request(authz))
		if rec.Code != want {
			t.Errorf("logins off, %q: %d, want %d", authz, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	Trusted(off.Protect(ok, Policy{Admin: true})).ServeHTTP(rec, request(""))
	if rec.Code != 200 || rec.Body.String() != "admin-socket" {
		t.Errorf("trusted: %d %q", rec.Code, rec.Body)
	}
}

func TestNewRefusesBadSetups(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("no htpasswd file accepted")
	}
	if _, err := New(Options{HtpasswdFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing htpasswd file accepted")
	}
	f := newFixture(t, nil)
	if _, err := New(Options{HtpasswdFile: f.passwd, Rules: []Rule{{Repositories: []string{"["}}}}); err == nil {
		t.Error("malformed rule accepted")
	}
}

// TestLimiterSharedWithOtherLogins: a login form checking another secret
// counts its failures in the same budget as Basic logins.
func TestLimiterSharedWithOtherLogins(t *testing.T) {
	f := newFixture(t, nil, func(o *Options) { o.LoginFailures, o.LoginWindow = 2, 20*time.Second })
	client := ClientKey(request(""))
	if d := f.a.Limiter().Check(client, func() bool { return false }); d == nil || d.Status != http.StatusUnauthorized {
		t.Fatalf("a failed check: %v, want 401", d)
	}
	if _, d := f.a.Login(client, "bob", "guess"); d == nil || d.Status != http.StatusUnauthorized {
		t.Fatalf("a failed login: %v, want 401", d)
	}
	ran := false
	if d := f.a.Limiter().Check(client, func() bool { ran = true; return true }); d == nil || d.Status != http.StatusTooManyRequests {
		t.Errorf("a third try: %v, want 429", d)
	}
	if ran {
		t.Error("the check ran for a client over its budget")
	}
	if _, d := f.a.Authenticate(request(basic("bob", "bob-pw"))); d == nil || d.Status != http.StatusTooManyRequests {
		t.Errorf("Basic from the same address: %v, want 429", d)
	}
	if d := NewLoginLimiter(0, 0).Check(client, func() bool { return true }); d != nil {
		t.Errorf("a limiter of its own: %v", d)
	}
}

func TestUserReadsTheFilesNow(t *testing.T) {
	f := newFixture(t, nil)
	if id, ok := f.a.User("carol"); !ok || id.User != "carol" || len(id.Groups) != 1 || id.Admin {
		t.Errorf("carol: %+v %v", id, ok)
	}
	if id, ok := f.a.User("alice"); !ok || !id.Admin {
		t.Errorf("alice: %+v %v, want an admin", id, ok)
	}
	writeFile(t, f.groups, "ops: bob\n")
	writeFile(t, f.passwd, htpasswdLine(t, "alice", "alice-pw")+"\n"+htpasswdLine(t, "carol", "carol-pw")+"\n")
	f.clock.advance(2 * time.Second)
	if _, ok := f.a.User("bob"); ok {
		t.Error("a removed user is still known")
	}
	if id, _ := f.a.User("carol"); len(id.Groups) != 0 {
		t.Errorf("carol's groups after the group file changed: %v", id.Groups)
	}
	if _, ok := f.a.User(""); ok {
		t.Error("the empty user is known")
	}
}

func TestAChangedPasswordChangesTheCredential(t *testing.T) {
	f := newFixture(t, nil)
	bob, d := f.a.Login("192.0.2.1", "bob", "bob-pw")
	if d != nil || bob.Credential == "" {
		t.Fatalf("bob's login: %+v %v", bob, d)
	}
	if now, ok := f.a.User("bob"); !ok || now.Credential != bob.Credential {
		t.Fatalf("bob unchanged: %+v %v, want credential %q", now, ok, bob.Credential)
	}
	alice, _ := f.a.User("alice")
	if alice.Credential == bob.Credential {
		t.Error("two users' entries have one credential")
	}
	// Another user's password changes: bob's login stands.
	b, err := os.ReadFile(f.passwd)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, "alice:") {
			kept = append(kept, line)
		}
	}
	writeFile(t, f.passwd, strings.Join(append(kept, htpasswdLine(t, "alice", "alice-new")), "\n")+"\n")
	f.clock.advance(2 * time.Second) // past CheckInterval
	if now, ok := f.a.User("bob"); !ok || now.Credential != bob.Credential {
		t.Errorf("alice's change moved bob's credential: %+v %v", now, ok)
	}
	// Bob's own password changes, to the same password even (a new salt):
	// what a login proved no longer stands.
	writeFile(t, f.passwd, htpasswdLine(t, "bob", "bob-pw")+"\n"+htpasswdLine(t, "alice", "alice-new")+"\n")
	f.clock.advance(2 * time.Second)
	if now, ok := f.a.User("bob"); !ok || now.Credential == bob.Credential {
		t.Errorf("after bob's entry changed: %+v %v, want a new credential", now, ok)
	}
}
