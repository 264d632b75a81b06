// Package auth decides who may pull what from pullcache. It authenticates
// a request — HTTP Basic against an htpasswd file of bcrypt entries, or a
// short-lived token it signed itself — into an Identity; it applies the
// access rules to an identity, a registry and a repository; it issues
// tokens at its token endpoint (the Docker registry token protocol, which
// every registry client speaks); and it rate-limits failed logins per
// client address.
//
// It is not a user database: users and groups live in an htpasswd file and
// an optional group file, reloaded when they change. It knows nothing of
// the registry API's routes: callers say which registry and repository a
// request is for. It imports no other package of pullcache.
package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"time"
)

// Identity is who a request comes from.
type Identity struct {
	// User is the user name; empty for an anonymous client.
	User string
	// Groups are the user's groups from the group file.
	Groups []string
	// Admin: the user is one of Options.Admins (or the request came
	// through Trusted, or carried the admin token).
	Admin bool
	// Via says how the identity was established: "anonymous", "basic",
	// "token", "admin-token" or "trusted".
	Via string
	// Credential stands for the user's htpasswd entry as it was read
	// (a digest of the hash, never the hash): a login kept elsewhere (a
	// console session) compares it with User's to end when the password
	// changes. Empty for identities without an entry.
	Credential string
	// scopes are what a token was issued for; nil unless Via is "token".
	scopes []Scope
}

// Anonymous reports whether no user is known.
func (id Identity) Anonymous() bool { return id.User == "" }

// Target is what a request asks for.
type Target struct {
	// Registry is the registry the request resolved to; empty for the API
	// root (GET /v2/), which any authenticated client may reach.
	Registry string
	// Repository is the repository within Registry; empty for a request
	// about the whole registry (the catalog).
	Repository string
	// Name is the repository name as the client wrote it in the path (a
	// token's scope names it so). Empty for the catalog.
	Name string
}

// Denial is a refused request: 401 (no or bad credentials), 403 (known
// user, not allowed) or 429 (too many failed logins from the address).
type Denial struct {
	Status int
	// Reason is safe to send to the client and to log: it names the user,
	// registry and repository, never a credential.
	Reason string
	// RetryAfter is when a 429's client may try again.
	RetryAfter time.Duration
	// scope and bearerError complete a 401's challenge.
	scope, bearerError string
}

func (d *Denial) Error() string { return fmt.Sprintf("%d: %s", d.Status, d.Reason) }

// Options configure an Authenticator.
type Options struct {
	// HtpasswdFile holds the users, one "user:bcrypt-hash" per line (what
	// `htpasswd -B` writes); lines of other hash types are ignored, with a
	// warning. Required. Reloaded when it changes.
	HtpasswdFile string
	// GroupFile holds groups, one "group: user1 user2" per line (Apache's
	// htgroup format). Default none. Reloaded when it changes.
	GroupFile string
	// Rules decide who may pull what; the first matching rule decides and
	// no match is a denial. Default: every authenticated user may pull
	// everything, anonymous clients nothing.
	Rules []Rule
	// Admins are the users who may use the admin API. Default none.
	Admins []string
	// Service names this server in tokens and challenges. Default "pullcache".
	Service string
	// Realm is the token endpoint's absolute URL in challenges. Default:
	// TokenPath on the host and scheme the request came in on.
	Realm string
	// TokenTTL is how long an issued token is valid. Default 5m.
	TokenTTL time.Duration
	// LoginFailures failed logins from one client address are allowed in
	// LoginWindow; beyond them its logins are refused with 429 until the
	// window has let enough of them expire. Defaults 10 and 1m.
	LoginFailures int
	LoginWindow   time.Duration
	// CheckInterval is how often the user and group files are checked for
	// changes (one stat each). Default 1s.
	CheckInterval time.Duration
	// Logger receives reloads and token issues. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// dummyCost is the bcrypt cost of the hash unknown users are compared
	// against; tests lower it. Default bcrypt.DefaultCost.
	dummyCost int
}

// TokenPath is where TokenHandler is served.
const TokenPath = "/auth/token"

// Authenticator authenticates requests and decides access. A nil
// *Authenticator is valid for Protect and means logins are off.
type Authenticator struct {
	opts    Options
	users   *users
	limiter *LoginLimiter
	key     []byte // HMAC key of tokens, random per process
}

// New returns an Authenticator; it reads the user and group files once, and
// fails if they cannot be read or a rule is malformed.
func New(opts Options) (*Authenticator, error) {
	if opts.HtpasswdFile == "" {
		return nil, errors.New("auth: an htpasswd file is required")
	}
	if err := ValidateRules(opts.Rules); err != nil {
		return nil, err
	}
	if len(opts.Rules) == 0 {
		opts.Rules = defaultRules
	}
	setDefaults(&opts)
	u, err := newUsers(opts)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &Authenticator{opts: opts, users: u, key: key,
		limiter: newLoginLimiter(opts.LoginFailures, opts.LoginWindow, opts.Now)}, nil
}

func setDefaults(o *Options) {
	if o.Service == "" {
		o.Service = "pullcache"
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = 5 * time.Minute
	}
	if o.LoginFailures <= 0 {
		o.LoginFailures = 10
	}
	if o.LoginWindow <= 0 {
		o.LoginWindow = time.Minute
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// maxAuthorization bounds the Authorization header read: a Basic pair or
// one of our tokens is far shorter.
const maxAuthorization = 8 << 10

// Authenticate says who r comes from: anonymous without an Authorization
// header, a user for valid Basic credentials or a valid token of ours. Bad
// credentials are a 401 Denial, and count towards the address's failed
// logins; an address over its limit gets a 429 Denial before any check.
func (a *Authenticator) Authenticate(r *http.Request) (Identity, *Denial) {
	if id, ok := trustedFrom(r.Context()); ok {
		return id, nil
	}
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return Identity{Via: "anonymous"}, nil
	}
	if len(values) > 1 {
		return Identity{}, unauthorized("send one Authorization header", "invalid_request")
	}
	c, err := parseAuthorization(values[0])
	if err != nil {
		return Identity{}, unauthorized("malformed Authorization header", "invalid_request")
	}
	if c.token != "" {
		return a.verifyToken(c.token)
	}
	return a.login(r, c.user, c.password)
}

// login checks a user name and password, rate-limiting failures per
// client address.
func (a *Authenticator) login(r *http.Request, user, password string) (Identity, *Denial) {
	return a.Login(ClientKey(r), user, password)
}

// Login checks a user name and password as a Basic login does, for a
// login form: failures count towards client's budget (ClientKey of its
// request), and a client over it gets a 429 Denial unchecked.
func (a *Authenticator) Login(client, user, password string) (Identity, *Denial) {
	if d := a.limiter.Check(client, func() bool { return a.users.verify(user, password) }); d != nil {
		if d.Status == http.StatusUnauthorized {
			a.opts.Logger.Warn("failed login", "user", user, "client", client)
		}
		return Identity{}, d
	}
	return a.identity(user, "basic"), nil
}

// Limiter is the budget of failed logins per address that Login and every
// request's credentials count against: a login form checking another
// secret (the admin token) counts its failures here too.
func (a *Authenticator) Limiter() *LoginLimiter { return a.limiter }

// User is the identity of user as the user and group files say now (its
// groups reread, its Credential that of its entry now), for a login kept
// elsewhere (a console session); false when the user is no longer in the
// htpasswd file, which ends such a login as it ends the user's tokens.
func (a *Authenticator) User(user string) (Identity, bool) {
	if user == "" || !a.users.exists(user) {
		return Identity{}, false
	}
	return a.identity(user, "basic"), true
}

func (a *Authenticator) identity(user, via string) Identity {
	return Identity{User: user, Groups: a.users.groupsOf(user), Admin: slices.Contains(a.opts.Admins, user), Via: via,
		Credential: a.users.credential(user)}
}

func unauthorized(reason, bearerError string) *Denial {
	return &Denial{Status: http.StatusUnauthorized, Reason: reason, bearerError: bearerError}
}

// Decide says whether id may pull t: nil when it may, else the Denial.
func (a *Authenticator) Decide(id Identity, t Target) *Denial {
	if id.Via == "trusted" {
		return nil
	}
	if t.Registry == "" {
		// The API root answers 200 to anyone who authenticated (an
		// anonymous token included), so clients learn logins work.
		if id.Via == "anonymous" {
			return unauthorized("authentication required", "")
		}
		return nil
	}
	scope := scopeFor(t)
	if id.Via == "token" && !id.covers(scope) {
		d := unauthorized("the token does not cover "+scope.String(), "insufficient_scope")
		d.scope = scope.String()
		return d
	}
	for _, r := range a.opts.Rules {
		if r.matches(t.Registry, t.Repository) {
			if r.admits(id) {
				return nil
			}
			break
		}
	}
	what := t.Registry + "/" + t.Repository
	if t.Repository == "" {
		what = "the catalog of " + t.Registry
	}
	if id.Anonymous() {
		d := unauthorized("authentication required to pull "+what, "insufficient_scope")
		d.scope = scope.String()
		return d
	}
	return &Denial{Status: http.StatusForbidden, Reason: "user " + id.User + " may not pull " + what}
}

// hostRE is what a Host header must look like to be echoed in a realm.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$`)

// Challenge is the WWW-Authenticate value of a 401: a Bearer challenge
// naming the token endpoint, the service, and the scope a token needs.
func (a *Authenticator) Challenge(r *http.Request, d *Denial) string {
	v := fmt.Sprintf(`Bearer realm=%q,service=%q`, a.realm(r), a.opts.Service)
	if d != nil && d.scope != "" {
		v += fmt.Sprintf(`,scope=%q`, d.scope)
	}
	if d != nil && d.bearerError != "" {
		v += fmt.Sprintf(`,error=%q`, d.bearerError)
	}
	return v
}

func (a *Authenticator) realm(r *http.Request) string {
	if a.opts.Realm != "" {
		return a.opts.Realm
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if !hostRE.MatchString(host) {
		host = "localhost"
	}
	return scheme + "://" + host + TokenPath
}

type ctxKey struct{}

// Trusted marks every request through next as coming from the process's
// owner (the admin socket): full access, no credentials asked.
func Trusted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := Identity{User: "admin-socket", Admin: true, Via: "trusted"}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func trustedFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok && id.Via == "trusted"
}

// IdentityFrom returns the identity Protect or Trusted established for a
// request.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
