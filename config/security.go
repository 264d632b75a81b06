package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// TLS serves the registry API over HTTPS.
type TLS struct {
	// Cert and Key are PEM files of the server's certificate (chain) and
	// key, reloaded when they change. Default none: plain HTTP.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Auth turns on client logins.
type Auth struct {
	// Htpasswd is an htpasswd file of bcrypt entries (htpasswd -B),
	// reloaded when it changes. Default none: logins off, every client
	// anonymous and allowed.
	Htpasswd string `yaml:"htpasswd"`
	// Groups is a group file ("group: user1 user2" per line) that access
	// rules can name groups from. Default none.
	Groups string `yaml:"groups"`
	// Admins are the users allowed to use the admin API on the main
	// listener (as is admin_token). Default none.
	Admins []string `yaml:"admins"`
	// TokenTTL is how long a token from /auth/token is valid. Default 5m.
	TokenTTL Duration `yaml:"token_ttl"`
	// Realm is the token endpoint's URL in challenges, for a mirror behind
	// a proxy that changes scheme or host. Default: derived from the
	// request (https when TLS is on).
	Realm string `yaml:"realm"`
	// LoginFailures failed logins per client address are allowed per
	// LoginWindow; beyond them 429 until the window lets one more. Defaults
	// 10 and 1m.
	LoginFailures int      `yaml:"login_failures"`
	LoginWindow   Duration `yaml:"login_window"`
}

// AccessRule says who may pull from the registries and repositories it
// matches; the first rule that matches a request decides, and a request no
// rule matches is denied.
type AccessRule struct {
	// Registries are registry name patterns ("*.example.com"). Default: all.
	Registries []string `yaml:"registries"`
	// Repositories are repository patterns ("myorg/*" one level, "myorg/**"
	// any depth). Default: all.
	Repositories []string `yaml:"repositories"`
	// Users admitted ("*": any authenticated user). Default none.
	Users []string `yaml:"users"`
	// Groups admitted, from auth.groups. Default none.
	Groups []string `yaml:"groups"`
	// Anonymous admits everyone. Default false.
	Anonymous bool `yaml:"anonymous"`
}

// Limits bound what clients may hold of the server. 0 means no limit.
type Limits struct {
	// MaxConnections bounds the connections open at once; beyond it new
	// ones are closed at once. Default 10000.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerClient bounds one client address's open
	// connections. Default 0 (no limit: CI runners behind one NAT share
	// an address).
	MaxConnectionsPerClient int `yaml:"max_connections_per_client"`
	// MaxRequestsPerClient bounds one client address's requests in flight;
	// beyond it 429 TOOMANYREQUESTS with Retry-After. Default 0 (no limit).
	MaxRequestsPerClient int `yaml:"max_requests_per_client"`
}

// AuthEnabled reports whether client logins are on.
func (c Config) AuthEnabled() bool { return c.Auth.Htpasswd != "" }

// TLSEnabled reports whether the registry API is served over HTTPS.
func (c Config) TLSEnabled() bool { return c.TLS.Cert != "" }

func (c Config) validateSecurity() error {
	var errs []error
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("tls.cert and tls.key: give both (--tls-cert, --tls-key)"))
	}
	if c.TLSClientCAFile != "" && !c.TLSEnabled() {
		errs = append(errs, errors.New("tls_client_ca_file: needs tls.cert and tls.key (client certificates are a TLS feature)"))
	}
	a := c.Auth
	if !c.AuthEnabled() {
		switch {
		case len(c.Access) > 0:
			errs = append(errs, errors.New("access: needs auth.htpasswd (--htpasswd): without logins every client is anonymous"))
		case a.Groups != "" || len(a.Admins) > 0:
			errs = append(errs, errors.New("auth.groups and auth.admins: need auth.htpasswd (--htpasswd)"))
		}
	}
	if a.TokenTTL < 0 || a.LoginWindow < 0 || a.LoginFailures < 0 {
		errs = append(errs, errors.New("auth.token_ttl, auth.login_window, auth.login_failures: must not be negative"))
	}
	if a.Realm != "" {
		if u, err := url.Parse(a.Realm); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("auth.realm %q: want an absolute http:// or https:// URL", a.Realm))
		}
	}
	for i, r := range c.Access {
		if len(r.Registries) == 0 && len(r.Repositories) == 0 && i < len(c.Access)-1 {
			errs = append(errs, fmt.Errorf("access[%d]: matches every request, so the rules after it never apply", i))
		}
	}
	l := c.Limits
	if l.MaxConnections < 0 || l.MaxConnectionsPerClient < 0 || l.MaxRequestsPerClient < 0 {
		errs = append(errs, errors.New("limits: must not be negative (0: no limit)"))
	}
	return errors.Join(errs...)
}

func intSetting(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want a number, got %q", v)
		}
		*field(c) = n
		return nil
	}
}
