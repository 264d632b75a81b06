package proxy

import (
	"net/http"

	"github.com/pullcache/pullcache/auth"
)

// authorize authenticates r and decides req by the access rules; nil when
// logins are off or the request may go on. Blobs stay bounded by the
// per-repository links besides (authorizeBlob): a client allowed to pull
// repository A reads through A only what A links or its upstream
// confirms, whatever digests it learned elsewhere.
func (s *Server) authorize(w *recorder, r *http.Request, req Request) error {
	a := s.opts.Auth
	if a == nil {
		return nil
	}
	id, d := a.Authenticate(r)
	if d == nil {
		w.user = id.User
		d = a.Decide(id, accessTarget(req))
	}
	if d == nil {
		return nil
	}
	return denialError(a, r, d)
}

// authorizeUnrouted decides a request for a registry this mirror does
// not serve: an anonymous client the rules do not admit there gets the
// login challenge it would get for a configured registry, so that probing
// names tells it nothing; everyone else learns the registry is unknown.
func (s *Server) authorizeUnrouted(r *http.Request, req Request) error {
	a := s.opts.Auth
	if a == nil {
		return nil
	}
	id, d := a.Authenticate(r)
	if d == nil && id.Anonymous() {
		d = a.Decide(id, accessTarget(req))
	}
	if d == nil {
		return nil
	}
	return denialError(a, r, d)
}

// accessTarget is what the rules are asked about: the API root, a whole
// registry (a route naming no repository, such as the catalog), or one
// repository, named also as the client wrote it (tokens are scoped so).
func accessTarget(req Request) auth.Target {
	if req.Route == RouteBase {
		return auth.Target{}
	}
	return auth.Target{Registry: req.Registry, Repository: req.Repo, Name: req.PathName}
}

func denialError(a *auth.Authenticator, r *http.Request, d *auth.Denial) *Error {
	switch d.Status {
	case http.StatusUnauthorized:
		return newError(d.Status, CodeUnauthorized, d.Reason).withHeader("WWW-Authenticate", a.Challenge(r, d))
	case http.StatusTooManyRequests:
		e := newError(d.Status, CodeTooManyRequests, d.Reason)
		e.RetryAfter = auth.RetryAfterSeconds(d)
		return e
	}
	return newError(http.StatusForbidden, CodeDenied, d.Reason)
}
