package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Identity is who a console session belongs to.
type Identity struct {
	// Name is shown in the header.
	Name string
	// User is the user name the access rules know; empty for a login
	// with the admin token.
	User string
	// Admin may change the cache (import, warm, pin, delete, collect
	// garbage, verify) and sees everything it holds; other identities see
	// what the access rules let them pull, and change nothing.
	Admin bool
	// Credential stands for the password the login proved, as the
	// authenticator reads it: when it no longer matches, the password
	// changed and the session ends (Rules.Access says so).
	Credential string
}

// Logins check what the sign-in form sent: the seam where the mirror's
// logins (users and the admin token) plug in.
type Logins interface {
	// Authenticate returns the identity that user (empty for the admin
	// token) and secret prove. r is the form's request: failed logins
	// are counted per client address. It fails with ErrBadLogin, or with
	// a *Throttled while the address has failed too often.
	Authenticate(r *http.Request, user, secret string) (Identity, error)
	// Form says what the login form asks for.
	Form() LoginForm
}

// LoginForm is what the login form asks for.
type LoginForm struct {
	// Users: a user name and password. Token: the admin token (with the
	// user name left empty, when Users is set too).
	Users, Token bool
}

// Rules is what Logins with access rules do too: they say what each
// identity may see. Without it every identity sees everything.
type Rules interface {
	// Access returns what id may pull now (asked on every request, so
	// that a changed rule or group applies at once), or false when its
	// login no longer stands (the user was removed, or their password
	// changed), which ends the session.
	Access(id Identity) (MayPull, bool)
}

// MayPull reports whether repository of registry may be pulled.
type MayPull func(registry, repository string) bool

// ErrBadLogin says a login was refused.
var ErrBadLogin = errors.New("wrong user name, password or token")

// Throttled refuses a login from an address that failed too often.
type Throttled struct {
	// RetryAfter is when the address may try again.
	RetryAfter time.Duration
}

func (t *Throttled) Error() string {
	return fmt.Sprintf("too many failed logins from this address; try again in %s", t.RetryAfter.Round(time.Second))
}

const (
	sessionCookie = "pullcache_session"
	loginCookie   = "pullcache_login"
	// sessionTTL is how long a login lasts.
	sessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions kept; the oldest go first.
	maxSessions = 1024
)

// session is one logged-in browser.
type session struct {
	id      Identity
	csrf    string
	expires time.Time
}

// sessions are kept in memory: a restart logs everyone out, and nothing
// secret is ever written to disk.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	now func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) create(id Identity) (string, *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	if len(s.m) >= maxSessions {
		s.dropOldestLocked()
	}
	key := randomToken()
	sess := &session{id: id, csrf: randomToken(), expires: now.Add(sessionTTL)}
	s.m[key] = sess
	return key, sess
}

func (s *sessions) dropOldestLocked() {
	var oldest string
	for k, v := range s.m {
		if oldest == "" || v.expires.Before(s.m[oldest].expires) {
			oldest = k
		}
	}
	delete(s.m, oldest)
}

func (s *sessions) get(key string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[key]
	if !ok || s.now().After(sess.expires) {
		delete(s.m, key)
		return nil, false
	}
	return sess, true
}

func (s *sessions) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// viewer is who is looking, for one request: the session, and what its
// identity may see as the access rules say now.
type viewer struct {
	*session
	may MayPull // nil: everything
}

func (v *viewer) admin() bool { return v.id.Admin }

// sees reports whether the viewer may see repository of registry: what
// the access rules let them pull.
func (v *viewer) sees(registry, repository string) bool {
	return v.may == nil || v.may(registry, repository)
}

// viewerOf returns the request's viewer, if it has a live session whose
// login still stands.
func (c *Console) viewerOf(r *http.Request) (*viewer, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	sess, ok := c.sessions.get(ck.Value)
	if !ok {
		return nil, false
	}
	v := &viewer{session: sess}
	if rules, ok := c.opts.Logins.(Rules); ok {
		may, ok := rules.Access(sess.id)
		if !ok {
			c.sessions.remove(ck.Value)
			return nil, false
		}
		if !sess.id.Admin {
			v.may = may
		}
	}
	return v, true
}

func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// sameOrigin refuses a state-changing request that a browser says came
// from another site: Sec-Fetch-Site, else Origin against Host, as
// net/http's CrossOriginProtection decides. Browsers send one of them on
// every POST; a request with neither is not a browser's, and the CSRF token
// still applies.
func sameOrigin(r *http.Request) bool {
	return http.NewCrossOriginProtection().Check(r) == nil
}

// checkCSRF: a state-changing request must carry the session's CSRF token
// (header X-CSRF-Token from the scripts, field csrf from forms) and come
// from this site.
func checkCSRF(r *http.Request, sess *session) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return sameOrigin(r) && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, r, http.StatusOK, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	// Login CSRF: the form carries a value its own cookie must match.
	token := randomToken()
	http.SetCookie(w, cookie(r, loginCookie, token, 600))
	c.render(w, r, status, "login", page{Title: "Sign in", Data: loginData{
		CSRF: token, Error: msg, Form: c.opts.Logins.Form(), Next: safeNext(r.FormValue("next")),
	}})
}

type loginData struct {
	CSRF, Error, Next string
	Form              LoginForm
}

// safeNext keeps a redirect after login inside the console.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || len(u.Path) < 4 || u.Path[:4] != "/ui/" {
		return "/ui/"
	}
	return u.RequestURI()
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCookie)
	form := r.PostFormValue("csrf")
	if err != nil || !sameOrigin(r) || form == "" || subtle.ConstantTimeCompare([]byte(form), []byte(ck.Value)) != 1 {
		c.renderLogin(w, r, http.StatusForbidden, "The sign-in form expired or came from another site; try again.")
		return
	}
	user := ""
	if c.opts.Logins.Form().Users {
		user = r.PostFormValue("user")
	}
	id, err := c.opts.Logins.Authenticate(r, user, r.PostFormValue("secret"))
	var throttled *Throttled
	switch {
	case errors.As(err, &throttled):
		c.opts.Logger.Warn("console login refused", "remote", r.RemoteAddr, "user", user, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(throttled.RetryAfter.Seconds())))))
		c.renderLogin(w, r, http.StatusTooManyRequests, "Too many failed sign-ins from your address; try again in "+
			throttled.RetryAfter.Round(time.Second).String()+".")
		return
	case err != nil:
		c.opts.Logger.Warn("console login refused", "remote", r.RemoteAddr, "user", user, "err", err)
		c.renderLogin(w, r, http.StatusUnauthorized, loginRefused(c.opts.Logins.Form()))
		return
	}
	key, _ := c.sessions.create(id)
	http.SetCookie(w, cookie(r, sessionCookie, key, int(sessionTTL/time.Second)))
	http.SetCookie(w, cookie(r, loginCookie, "", -1))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// loginRefused says what was wrong, as far as the form asked for it.
func loginRefused(f LoginForm) string {
	switch {
	case f.Users && f.Token:
		return "Wrong user name, password or token."
	case f.Users:
		return "Wrong user name or password."
	}
	return "Wrong token."
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *viewer) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.remove(ck.Value)
	}
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// authorize is the one place that decides what a session may do with
// the admin API: looking needs a session (and the access rules filter
// what is seen), changing the cache needs an admin.
func authorize(id Identity, r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	}
	return id.Admin
}
