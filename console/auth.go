package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Identity is who a console session belongs to.
type Identity struct {
	// Name is shown in the header.
	Name string
	// Admin may change the cache (import, warm, and the destructive
	// actions); other identities only look.
	Admin bool
}

// Authenticator checks what the login form sent. The seam where logins
// and access rules plug in: until then TokenAuth, the admin token, is the
// only one.
type Authenticator interface {
	// Authenticate returns the identity of user (empty when the form does
	// not ask for one) proven by secret, or ErrBadLogin.
	Authenticate(ctx context.Context, user, secret string) (Identity, error)
	// AsksUser says whether the login form asks for a user name.
	AsksUser() bool
}

// ErrBadLogin says a login was refused.
var ErrBadLogin = errors.New("wrong token")

// TokenAuth admits whoever knows the admin token, as an admin.
type TokenAuth struct{ Token string }

// Authenticate compares secret with the token in constant time.
func (a TokenAuth) Authenticate(_ context.Context, _, secret string) (Identity, error) {
	if a.Token == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(a.Token)) != 1 {
		return Identity{}, ErrBadLogin
	}
	return Identity{Name: "admin", Admin: true}, nil
}

// AsksUser is false: the token is the whole login.
func (TokenAuth) AsksUser() bool { return false }

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

// sessionOf returns the request's session, if it has a live one.
func (c *Console) sessionOf(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	return c.sessions.get(ck.Value)
}

func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// sameOrigin refuses a state-changing request that a browser says came
// from another site. Browsers send Origin on every POST; a request
// without it is not a browser's, and the CSRF token still applies.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
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
		CSRF: token, Error: msg, AsksUser: c.opts.Auth.AsksUser(), Next: safeNext(r.FormValue("next")),
	}})
}

type loginData struct {
	CSRF, Error, Next string
	AsksUser          bool
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
	id, err := c.opts.Auth.Authenticate(r.Context(), r.PostFormValue("user"), r.PostFormValue("secret"))
	if err != nil {
		c.opts.Logger.Warn("console login refused", "remote", r.RemoteAddr, "err", err)
		c.renderLogin(w, r, http.StatusUnauthorized, "Wrong token.")
		return
	}
	key, _ := c.sessions.create(id)
	http.SetCookie(w, cookie(r, sessionCookie, key, int(sessionTTL/time.Second)))
	http.SetCookie(w, cookie(r, loginCookie, "", -1))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, sess *session) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.remove(ck.Value)
	}
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// authorize is the one place that decides what a session may do: until
// access rules exist, looking needs a session, changing the cache needs
// an admin.
func authorize(id Identity, r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	}
	return id.Admin
}
