package auth

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Scope is one access a token is asked for or grants, as in the Docker
// registry token protocol: "repository:NAME:pull", "registry:catalog:*".
type Scope struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (s Scope) String() string { return s.Type + ":" + s.Name + ":" + strings.Join(s.Actions, ",") }

// maxScopes bounds the scopes one token request may ask for.
const maxScopes = 32

// ParseScope reads "TYPE:NAME:ACTIONS". NAME may itself hold colons (a
// registry host with a port), so TYPE ends at the first colon and ACTIONS
// start after the last.
func ParseScope(s string) (Scope, bool) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndex(rest, ":")
	if !ok || i <= 0 || len(s) > 1024 {
		return Scope{}, false
	}
	name, actions := rest[:i], rest[i+1:]
	if typ == "" || strings.ContainsFunc(s, func(r rune) bool { return isControl(r) || r == ' ' || r == '"' || r == '\\' }) {
		return Scope{}, false
	}
	sc := Scope{Type: typ, Name: name}
	for _, a := range strings.Split(actions, ",") {
		if a != "" {
			sc.Actions = append(sc.Actions, a)
		}
	}
	return sc, len(sc.Actions) > 0
}

// scopeFor is the scope a request for t needs.
func scopeFor(t Target) Scope {
	if t.Repository == "" {
		return Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}
	}
	return Scope{Type: "repository", Name: t.Name, Actions: []string{"pull"}}
}

// grantable cuts a requested scope down to what a mirror can grant: pull
// of a repository, or the catalog. Nothing else exists here.
func grantable(s Scope) (Scope, bool) {
	switch {
	case s.Type == "repository" && slices.Contains(s.Actions, "pull"):
		return Scope{Type: s.Type, Name: s.Name, Actions: []string{"pull"}}, true
	case s.Type == "registry" && s.Name == "catalog" && slices.Contains(s.Actions, "*"):
		return Scope{Type: s.Type, Name: s.Name, Actions: []string{"*"}}, true
	}
	return Scope{}, false
}

func (id Identity) covers(need Scope) bool {
	return slices.ContainsFunc(id.scopes, func(s Scope) bool {
		return s.Type == need.Type && s.Name == need.Name && slices.Contains(s.Actions, need.Actions[0])
	})
}

type claims struct {
	jwt.RegisteredClaims
	Access []Scope `json:"access,omitempty"`
}

// issuer is the iss of every token.
const issuer = "pullcache"

// issue signs a token for user (empty: anonymous) granting scopes.
func (a *Authenticator) issue(user string, scopes []Scope) (string, time.Time, error) {
	now := a.opts.Now()
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{a.opts.Service},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(a.opts.TokenTTL)),
			ID:        hex.EncodeToString(jti),
		},
		Access: scopes,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.key)
	return s, now, err
}

// verifyToken checks a token's signature, issuer, audience and expiry,
// and that its user still exists.
func (a *Authenticator) verifyToken(tok string) (Identity, *Denial) {
	var c claims
	_, err := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer), jwt.WithAudience(a.opts.Service),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(a.opts.Now))
	if err != nil {
		return Identity{}, unauthorized("invalid or expired token", "invalid_token")
	}
	if c.Subject != "" && !a.users.exists(c.Subject) {
		return Identity{}, unauthorized("invalid or expired token", "invalid_token")
	}
	id := Identity{Via: "token"}
	if c.Subject != "" {
		id = a.identity(c.Subject, "token")
	}
	id.scopes = c.Access
	return id, nil
}

// tokenResponse is the token endpoint's answer; token and access_token
// carry the same value, for clients of either name.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// TokenHandler is the token endpoint (served at TokenPath), after the
// Docker registry token protocol: GET with optional Basic credentials and
// scope= parameters, or POST of an OAuth2 form (grant_type=password,
// username, password, scope). Without credentials it issues an anonymous
// token. A token grants pull of the repositories asked for (and the
// catalog); each request is still decided by the rules, with the token's
// user, so a token proves who the client is and which repository name it
// was issued for, and the rules stay the one place that says who may pull
// what.
func (a *Authenticator) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, scopes, d := a.tokenRequest(w, r)
		if d != nil {
			a.writeDenial(w, r, d, `Basic realm="`+a.opts.Service+`"`)
			return
		}
		tok, at, err := a.issue(user, scopes)
		if err != nil {
			a.writeDenial(w, r, &Denial{Status: http.StatusInternalServerError, Reason: "cannot sign a token"}, "")
			return
		}
		a.opts.Logger.Info("token issued", "user", user, "scopes", len(scopes), "client", ClientKey(r))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(tokenResponse{Token: tok, AccessToken: tok,
			ExpiresIn: int(a.opts.TokenTTL.Seconds()), IssuedAt: at.UTC().Format(time.RFC3339)})
	})
}

// maxTokenForm bounds a POSTed token request.
const maxTokenForm = 64 << 10

// tokenRequest authenticates a token request and returns its user and
// the scopes to grant.
func (a *Authenticator) tokenRequest(w http.ResponseWriter, r *http.Request) (string, []Scope, *Denial) {
	var requested []string
	switch r.Method {
	case http.MethodGet:
		requested = r.URL.Query()["scope"]
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if err := r.ParseForm(); err != nil {
			return "", nil, &Denial{Status: http.StatusBadRequest, Reason: "malformed token request"}
		}
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			// No refresh tokens are issued, so there is none to redeem;
			// clients then fall back to GET with Basic credentials.
			return "", nil, &Denial{Status: http.StatusBadRequest, Reason: "unsupported grant_type " + strings.ToValidUTF8(gt, "")}
		}
		requested = r.PostForm["scope"]
	default:
		return "", nil, &Denial{Status: http.StatusMethodNotAllowed, Reason: "GET or POST the token endpoint"}
	}
	scopes, d := grantedScopes(requested)
	if d != nil {
		return "", nil, d
	}
	id := Identity{Via: "anonymous"}
	switch {
	case r.Method == http.MethodPost:
		id, d = a.login(r, r.PostForm.Get("username"), r.PostForm.Get("password"))
	case r.Header.Get("Authorization") != "":
		id, d = a.Authenticate(r)
		if d == nil && id.Via == "token" {
			d = unauthorized("log in with a user name and password", "")
		}
	}
	return id.User, scopes, d
}

func grantedScopes(requested []string) ([]Scope, *Denial) {
	var out []Scope
	for _, field := range requested {
		for _, s := range strings.Fields(field) {
			sc, ok := ParseScope(s)
			if !ok {
				return nil, &Denial{Status: http.StatusBadRequest, Reason: "malformed scope"}
			}
			if g, ok := grantable(sc); ok && !slices.ContainsFunc(out, func(o Scope) bool { return o.String() == g.String() }) {
				out = append(out, g)
			}
			if len(out) > maxScopes {
				return nil, &Denial{Status: http.StatusBadRequest, Reason: "too many scopes"}
			}
		}
	}
	return out, nil
}
