package auth

import (
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"
)

// credentials are what an Authorization header carries: a user and
// password (Basic) or a token (Bearer).
type credentials struct {
	user, password string
	token          string
}

var (
	errMalformed = errors.New("malformed Authorization header")
	// tokenRE is RFC 6750's b64token.
	tokenRE = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)
)

// parseAuthorization reads an Authorization header: "Basic base64(user:
// password)" or "Bearer token" (schemes case-insensitive, RFC 9110 11.1).
// It is pure and bounded: anything longer than maxAuthorization, or not
// exactly one of these forms, is an error.
func parseAuthorization(h string) (credentials, error) {
	if len(h) > maxAuthorization {
		return credentials{}, errMalformed
	}
	scheme, rest, ok := strings.Cut(h, " ")
	rest = strings.TrimLeft(rest, " ")
	if !ok || rest == "" {
		return credentials{}, errMalformed
	}
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return credentials{}, errMalformed
		}
		user, password, ok := strings.Cut(string(raw), ":")
		if !ok || user == "" || strings.ContainsFunc(user, isControl) {
			return credentials{}, errMalformed
		}
		return credentials{user: user, password: password}, nil
	case "bearer":
		if !tokenRE.MatchString(rest) {
			return credentials{}, errMalformed
		}
		return credentials{token: rest}, nil
	}
	return credentials{}, errMalformed
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// ClientKey is the address failed logins are counted under: the peer's
// IP, or its /64 for IPv6, where one host commonly holds a whole /64.
func ClientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}
