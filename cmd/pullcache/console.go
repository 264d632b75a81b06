package main

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/auth"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/config"
	"github.com/pullcache/pullcache/console"
	"github.com/pullcache/pullcache/proxy"
	"github.com/pullcache/pullcache/stats"
	"github.com/pullcache/pullcache/upstream"
)

// observers are what serve shows of the registry API: its statistics,
// the health of the registries it built and the cluster's members.
type observers struct {
	stats *stats.Recorder
	mu    sync.Mutex
	regs  map[string]*upstream.Registry
	// members are the cluster's members; nil without a cluster.
	members func() []admin.MemberHealth
}

func newObservers() *observers {
	return &observers{stats: stats.New(nil), regs: map[string]*upstream.Registry{}}
}

// watch remembers the registry clients among ups.
func (o *observers) watch(ups map[string]proxy.Upstream) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for name, up := range ups {
		if r, ok := up.(*upstream.Registry); ok {
			o.regs[name] = r
		}
	}
}

func (o *observers) recorder() *stats.Recorder {
	if o == nil {
		return nil
	}
	return o.stats
}

// health reports every registry's endpoints, by registry name.
func (o *observers) health() []admin.RegistryHealth {
	o.mu.Lock()
	regs := make([]*upstream.Registry, 0, len(o.regs))
	for _, r := range o.regs {
		regs = append(regs, r)
	}
	o.mu.Unlock()
	out := make([]admin.RegistryHealth, 0, len(regs))
	for _, r := range regs {
		st := r.Status()
		h := admin.RegistryHealth{Registry: st.Registry}
		for _, ep := range st.Endpoints {
			h.Endpoints = append(h.Endpoints, admin.EndpointHealth{Host: ep.Host, DownUntil: ep.DownUntil,
				LastOK: ep.LastOK, LastError: ep.LastError, LastErrorAt: ep.LastErrorAt})
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Registry < out[j].Registry })
	return out
}

// consoleHandler is the web console at /ui/: the admin API (without a
// token of its own: the console's login guards it) behind the console's
// sessions. With logins on, every user signs in with their password and
// sees what the access rules let them pull; admins (auth.admins) and the
// admin token may change the cache. With neither logins nor a token it
// only says how to turn it on.
func consoleHandler(cfg config.Config, store *cache.Store, mirror string, obs *observers, log *slog.Logger, logins *auth.Authenticator) (http.Handler, error) {
	a := admin.New(adminOptions(cfg, store, mirror, log, "", cfg.UploadLimit, obs))
	opts := console.Options{Admin: a, DefaultRegistry: cfg.DefaultRegistry, UploadLimit: cfg.UploadLimit, Logger: log}
	if logins != nil || cfg.AdminToken != "" {
		opts.Logins = newConsoleLogins(cfg, logins)
	}
	return console.New(opts)
}

// consoleLogins are the console's logins: users by password (logins on)
// and the admin token (sent with no user name), every failure counted per
// client address in the registry's budget, so an address guessing through
// the form is refused as it would be through Basic credentials.
type consoleLogins struct {
	logins  *auth.Authenticator // nil: logins off, the token only
	token   string
	limiter *auth.LoginLimiter
}

func newConsoleLogins(cfg config.Config, logins *auth.Authenticator) consoleLogins {
	c := consoleLogins{logins: logins, token: cfg.AdminToken}
	if logins != nil {
		c.limiter = logins.Limiter()
	} else {
		c.limiter = auth.NewLoginLimiter(cfg.Auth.LoginFailures, time.Duration(cfg.Auth.LoginWindow))
	}
	return c
}

func (c consoleLogins) Authenticate(r *http.Request, user, secret string) (console.Identity, error) {
	client := auth.ClientKey(r)
	if user == "" {
		d := c.limiter.Check(client, func() bool {
			return c.token != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(c.token)) == 1
		})
		if d != nil {
			return console.Identity{}, consoleDenial(d)
		}
		return console.Identity{Name: "admin", Admin: true}, nil
	}
	if c.logins == nil {
		return console.Identity{}, console.ErrBadLogin
	}
	id, d := c.logins.Login(client, user, secret)
	if d != nil {
		return console.Identity{}, consoleDenial(d)
	}
	return console.Identity{Name: id.User, User: id.User, Admin: id.Admin, Credential: id.Credential}, nil
}

func consoleDenial(d *auth.Denial) error {
	if d.Status == http.StatusTooManyRequests {
		return &console.Throttled{RetryAfter: d.RetryAfter}
	}
	return console.ErrBadLogin
}

func (c consoleLogins) Form() console.LoginForm {
	return console.LoginForm{Users: c.logins != nil, Token: c.token != ""}
}

// Access is what a console user may see: what the access rules let them
// pull, as the user and group files say now; a user removed from the
// htpasswd file is signed out. The admin token sees everything.
func (c consoleLogins) Access(id console.Identity) (console.MayPull, bool) {
	if id.User == "" {
		return nil, id.Admin
	}
	if c.logins == nil {
		return nil, false
	}
	u, ok := c.logins.User(id.User)
	if !ok || u.Credential != id.Credential {
		return nil, false
	}
	return func(registry, repository string) bool {
		return c.logins.Decide(u, auth.Target{Registry: registry, Repository: repository, Name: repository}) == nil
	}, true
}

// watchAllowed wraps allow so the registries it builds are watched too.
func (o *observers) watchAllowed(allow func(string) (proxy.Upstream, bool)) func(string) (proxy.Upstream, bool) {
	if o == nil || allow == nil {
		return allow
	}
	return func(name string) (proxy.Upstream, bool) {
		up, ok := allow(name)
		if ok {
			o.watch(map[string]proxy.Upstream{name: up})
		}
		return up, ok
	}
}
