package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/pullcache/pullcache/auth"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/config"
)

// newLogins builds the logins and access rules; nil when logins are off.
func newLogins(cfg config.Config, log *slog.Logger) (*auth.Authenticator, error) {
	if !cfg.AuthEnabled() {
		return nil, nil
	}
	rules := make([]auth.Rule, len(cfg.Access))
	for i, r := range cfg.Access {
		rules[i] = auth.Rule(r)
	}
	return auth.New(auth.Options{
		HtpasswdFile:  cfg.Auth.Htpasswd,
		GroupFile:     cfg.Auth.Groups,
		Rules:         rules,
		Admins:        cfg.Auth.Admins,
		Realm:         cfg.Auth.Realm,
		TokenTTL:      time.Duration(cfg.Auth.TokenTTL),
		LoginFailures: cfg.Auth.LoginFailures,
		LoginWindow:   time.Duration(cfg.Auth.LoginWindow),
		Logger:        log,
	})
}

// adminOnListener is the admin API under /admin/ on the main listener,
// for admin users (auth.admins) and requests carrying admin_token, never
// for anonymous ones; nil when neither admins nor a token are configured.
func adminOnListener(cfg config.Config, store *cache.Store, mirror string, obs *observers, log *slog.Logger, logins *auth.Authenticator) http.Handler {
	if cfg.AdminToken == "" && (logins == nil || len(cfg.Auth.Admins) == 0) {
		return nil
	}
	h := adminHandler(cfg, store, mirror, log, "", cfg.UploadLimit, obs)
	return logins.Protect(h, auth.Policy{Admin: true, Token: cfg.AdminToken, Realm: "pullcache admin"})
}
