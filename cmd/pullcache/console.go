package main

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"sync"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/auth"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/config"
	"github.com/pullcache/pullcache/console"
	"github.com/pullcache/pullcache/proxy"
	"github.com/pullcache/pullcache/stats"
	"github.com/pullcache/pullcache/upstream"
)

// observers are what serve shows of the registry API: its statistics and
// the health of the registries it built.
type observers struct {
	stats *stats.Recorder
	mu    sync.Mutex
	regs  map[string]*upstream.Registry
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
// sessions. Admin users (auth.admins) log in with their password, and the
// admin token still works; with neither it only says how to turn it on.
func consoleHandler(cfg config.Config, store *cache.Store, mirror string, obs *observers, log *slog.Logger, authn *auth.Authenticator) (http.Handler, error) {
	a := admin.New(adminOptions(cfg, store, mirror, log, "", cfg.UploadLimit, obs))
	opts := console.Options{Admin: a, DefaultRegistry: cfg.DefaultRegistry, UploadLimit: cfg.UploadLimit, Logger: log}
	switch {
	case authn != nil && len(cfg.Auth.Admins) > 0:
		opts.Auth = consoleLogins{authn: authn, token: console.TokenAuth{Token: cfg.AdminToken}}
	case cfg.AdminToken != "":
		opts.Auth = console.TokenAuth{Token: cfg.AdminToken}
	}
	return console.New(opts)
}

// consoleLogins admits admin users by password, and the admin token (sent
// with no user name). Only admins: the console lists every cached image of
// every registry, which the access rules do not filter.
type consoleLogins struct {
	authn *auth.Authenticator
	token console.TokenAuth
}

func (c consoleLogins) Authenticate(ctx context.Context, user, secret string) (console.Identity, error) {
	if user == "" {
		return c.token.Authenticate(ctx, user, secret)
	}
	// The console does not pass the client's address: its logins share
	// one failure budget.
	id, d := c.authn.Login("console", user, secret)
	if d != nil || !id.Admin {
		return console.Identity{}, console.ErrBadLogin
	}
	return console.Identity{Name: id.User, Admin: true}, nil
}

func (consoleLogins) AsksUser() bool { return true }

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
