package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Policy says what Protect requires of a request.
type Policy struct {
	// Admin admits only admin users (Options.Admins); otherwise any
	// authenticated user is admitted.
	Admin bool
	// Token, when set, is also accepted as "Authorization: Bearer TOKEN",
	// as an admin (the admin_token setting).
	Token string
	// Realm is the Basic realm of the challenge, which makes browsers ask
	// for a login. Default "pullcache".
	Realm string
}

// Protect returns next behind the policy: the request must carry
// credentials of a user (Basic, or a token of this server) or the
// policy's token; anonymous requests are refused with a Basic challenge,
// users short of the policy with 403. The identity is in the request's
// context for next (IdentityFrom). On a nil Authenticator (logins off)
// only the policy's token admits; with no token either, nothing does.
func (a *Authenticator) Protect(next http.Handler, p Policy) http.Handler {
	if p.Realm == "" {
		p.Realm = "pullcache"
	}
	challenge := `Basic realm="` + p.Realm + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, d := a.protect(r, p)
		if d != nil {
			a.writeDenial(w, r, d, challenge)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func (a *Authenticator) protect(r *http.Request, p Policy) (Identity, *Denial) {
	if id, ok := trustedFrom(r.Context()); ok {
		return id, nil
	}
	if p.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(p.Token)) == 1 {
			return Identity{User: "admin-token", Admin: true, Via: "admin-token"}, nil
		}
	}
	if a == nil {
		return Identity{}, unauthorized("a valid token is required", "")
	}
	id, d := a.Authenticate(r)
	switch {
	case d != nil:
		return id, d
	case id.Anonymous():
		return id, unauthorized("authentication required", "")
	case p.Admin && !id.Admin:
		return id, &Denial{Status: http.StatusForbidden, Reason: "user " + id.User + " is not an admin"}
	}
	return id, nil
}

// writeDenial answers with OCI error JSON: UNAUTHORIZED (with challenge),
// DENIED, TOOMANYREQUESTS (with Retry-After) or another failure.
func (a *Authenticator) writeDenial(w http.ResponseWriter, r *http.Request, d *Denial, challenge string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	code := "UNKNOWN"
	switch d.Status {
	case http.StatusUnauthorized:
		code = "UNAUTHORIZED"
		if challenge != "" {
			h.Set("WWW-Authenticate", challenge)
		}
	case http.StatusForbidden:
		code = "DENIED"
	case http.StatusTooManyRequests:
		code = "TOOMANYREQUESTS"
		h.Set("Retry-After", strconv.Itoa(RetryAfterSeconds(d)))
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		code = "UNSUPPORTED"
	}
	w.WriteHeader(d.Status)
	if r.Method == http.MethodHead {
		return
	}
	type entry struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.NewEncoder(w).Encode(map[string][]entry{"errors": {{Code: code, Message: d.Reason}}})
}

// RetryAfterSeconds is a 429 Denial's Retry-After, in whole seconds (at
// least 1).
func RetryAfterSeconds(d *Denial) int {
	return max(1, int(math.Ceil(d.RetryAfter.Seconds())))
}
