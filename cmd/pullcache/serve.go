package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/pullcache/pullcache/auth"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/cluster"
	"github.com/pullcache/pullcache/config"
	"github.com/pullcache/pullcache/health"
	"github.com/pullcache/pullcache/proxy"
	"github.com/pullcache/pullcache/upstream"
)

func runServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, err := loadConfig("serve", args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	cfg.Data, err = config.PrepareData(cfg.Data)
	if err != nil {
		return err
	}
	tlsConf, err := serverTLS(cfg, log)
	if err != nil {
		return err
	}
	logins, err := newLogins(cfg, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store, err := openStoreWith(cfg, log, reg)
	if err != nil {
		return err
	}
	defer store.Close()
	obs := newObservers()
	node, err := newClusterNode(cfg, store, obs, log, reg)
	if err != nil {
		return err
	}
	srv, err := newProxyIn(cfg, store, log, reg, obs, logins, node)
	if err != nil {
		return err
	}
	defer srv.Close()
	if node != nil {
		node.Start()
		defer node.Close()
		defer reloadPeersOnHUP(args, node, log)()
	}
	ln, err := listen(ctx, cfg.Listen, sendBufferFor(cfg.SendBuffer, os.ReadFile))
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	ln = limitConnections(ln, cfg.Limits.MaxConnections, cfg.Limits.MaxConnectionsPerClient, log)
	mirror := mirrorURL(ln.Addr(), tlsConf != nil)
	// Without the socket (a data path too long for one, say) the mirror
	// still serves; import, export and warm then say the directory is in use.
	var alsoDrain []func(context.Context)
	if stopAdmin, err := startAdmin(cfg, store, mirror, srv, obs, log); err != nil {
		log.Warn("admin socket unavailable", "err", err)
	} else {
		// The socket drains alongside the listener within the same grace;
		// deferred too for a return before serving (then a no-op).
		alsoDrain = append(alsoDrain, stopAdmin)
		defer stopAdmin(context.Background())
	}
	var tokens http.Handler
	if logins != nil {
		tokens = logins.TokenHandler()
	}
	ui, err := consoleHandler(cfg, store, mirror, obs, log, logins)
	if err != nil {
		return err
	}
	ready, err := newReadiness(store, obs, reg)
	if err != nil {
		return err
	}
	if node != nil {
		ready.Add("cluster", func() (health.State, string) { return clusterState(node) })
	}
	if err := reg.Register(newServeCollector(obs.recorder(), store, obs, cfg.RegistryNames())); err != nil {
		return err
	}
	h := routes(srv, route{"/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}, route{"/readyz", ready},
		route{auth.TokenPath, tokens}, route{"/admin/", adminOnListener(cfg, store, mirror, obs, log, logins)}, route{"/ui/", ui})
	u := store.Usage()
	log.Info("listening", "addr", ln.Addr().String(), "data", cfg.Data, "max_size", u.Bound, "min_free", u.MinFree,
		"registries", strings.Join(cfg.RegistryNames(), ","), "offline", cfg.Offline,
		"tls", tlsConf != nil, "logins", logins != nil)
	served := limitRequests(h, cfg.Limits.MaxRequestsPerClient)
	if node != nil {
		served = node.Handler(unlimitedPeers(node, h, served))
	}
	hs := newHTTPServer(ready.Track(served, isProbe), log)
	hs.TLSConfig = tlsConf
	return serveUntilSignal(ctx, ln, hs, drainer{ready, time.Duration(cfg.ShutdownGrace), alsoDrain}, log)
}

func loadConfig(name string, args []string, stderr io.Writer) (config.Config, error) {
	fs := newFlagSet(name, stderr)
	flags := config.RegisterFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return config.Config{}, err
	}
	cfg, err := flags.Load(os.Getenv)
	if err != nil {
		return cfg, usageError{err.Error()}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{"invalid configuration: " + err.Error()}
	}
	return cfg, nil
}

func newLogger(l config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level))
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func openStore(cfg config.Config, log *slog.Logger) (*cache.Store, error) {
	return openStoreWith(cfg, log, nil)
}

// openStoreWith opens the store with its bound resolved on the data
// directory's filesystem and its metrics registered on reg (if not nil).
func openStoreWith(cfg config.Config, log *slog.Logger, reg prometheus.Registerer) (*cache.Store, error) {
	_, total, err := cache.DiskSpace(cfg.Data)
	if err != nil {
		return nil, err
	}
	store, err := cache.Open(cache.Options{
		Dir:          cfg.Data,
		Logger:       log,
		FillTimeout:  time.Duration(cfg.FillTimeout),
		StallTimeout: time.Duration(cfg.StallTimeout),
		MaxSize:      cfg.MaxSize.Of(total),
		MinFree:      cfg.MinFreeOf(total),
		Pins:         cfg.Pin,
		Metrics:      reg,
	})
	if err != nil && strings.Contains(err.Error(), "directory lock") {
		return nil, fmt.Errorf("data directory %s is in use by another pullcache process", cfg.Data)
	}
	return store, err
}

// newProxy builds the registry API; obs, when not nil, is told of what
// it serves and which registries it built; logins nil means no logins.
func newProxy(cfg config.Config, store *cache.Store, log *slog.Logger, reg prometheus.Registerer, obs *observers, logins *auth.Authenticator) (*proxy.Server, error) {
	return newProxyIn(cfg, store, log, reg, obs, logins, nil)
}

// newProxyIn is newProxy for a member of a cluster (node nil: none):
// every registry's client asks the owners first, and the members' own
// requests pass no login.
func newProxyIn(cfg config.Config, store *cache.Store, log *slog.Logger, reg prometheus.Registerer, obs *observers, logins *auth.Authenticator, node *cluster.Node) (*proxy.Server, error) {
	var health *upstream.Metrics
	if reg != nil {
		var err error
		if health, err = upstream.NewMetrics(reg); err != nil {
			return nil, err
		}
	}
	ups, err := newUpstreams(cfg, log, health)
	if err != nil {
		return nil, err
	}
	obs.watch(ups)
	allow := obs.watchAllowed(allowUpstream(cfg, log, health))
	shared, err := newSharedStore(cfg.Storage.S3, log, reg)
	if err != nil {
		return nil, fmt.Errorf("storage.s3: %w", err)
	}
	if wrap := decorator(node, shared); wrap != nil {
		for name, up := range ups {
			ups[name] = wrap(name, up)
		}
		allow = wrapAllowed(wrap, allow)
	}
	var trusted func(*http.Request) bool
	if node != nil {
		trusted = node.Trusted
	}
	var platforms []v1.Platform
	for _, p := range cfg.PrefetchPlatforms {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("prefetch_platforms: %w", err)
		}
		platforms = append(platforms, *pl)
	}
	defaultPlatform, err := v1.ParsePlatform(cfg.DefaultPlatform)
	if err != nil {
		return nil, fmt.Errorf("default_platform: %w", err)
	}
	return proxy.New(proxy.Options{
		Store:               store,
		Registries:          ups,
		Hosts:               cfg.Hosts,
		Allow:               allow,
		Trusted:             trusted,
		DefaultRegistry:     cfg.DefaultRegistry,
		TagTTL:              time.Duration(cfg.TagTTL),
		NegativeTTL:         time.Duration(cfg.NegativeTTL),
		ResponseTimeout:     time.Duration(cfg.ResponseTimeout),
		RevalidateTimeout:   time.Duration(cfg.RevalidateTimeout),
		Prefetch:            cfg.PrefetchEnabled() && !cfg.Offline,
		Offline:             cfg.Offline,
		Auth:                logins,
		PrefetchConcurrency: cfg.PrefetchConcurrency,
		PrefetchPlatforms:   platforms,
		DefaultPlatform:     *defaultPlatform,
		Logger:              log,
		Metrics:             reg,
		Stats:               obs.recorder(),
	})
}

// drainer is how a signal stops the server: readiness to turn 503 and
// wait on, and the grace the transfers in flight get.
type drainer struct {
	ready *health.Readiness
	grace time.Duration
	// also stop within the same grace, alongside the listener (the admin
	// socket), so that a signal never waits past it.
	also []func(context.Context)
}

// serveUntilSignal serves hs on ln (over TLS when hs has a TLSConfig)
// until SIGINT or SIGTERM, then drains: /readyz answers 503 at once while
// the listener stays open, the transfers in flight get d.grace to finish,
// and then the server closes.
func serveUntilSignal(ctx context.Context, ln net.Listener, hs *http.Server, d drainer, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := serveOn(hs, ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		drain(context.WithoutCancel(ctx), hs, d, log)
		return nil
	})
	return g.Wait()
}

// drain stops hs gracefully within d.grace.
func drain(ctx context.Context, hs *http.Server, d drainer, log *slog.Logger) {
	start := time.Now()
	log.Info("shutting down: draining", "grace", d.grace)
	ctx, cancel := context.WithTimeout(ctx, d.grace)
	defer cancel()
	var others sync.WaitGroup
	for _, stop := range d.also {
		others.Go(func() { stop(ctx) })
	}
	defer others.Wait()
	// Each response from now on closes its connection, so clients that
	// come back open a new one, which a load balancer sends elsewhere.
	hs.SetKeepAlivesEnabled(false)
	err := d.ready.Drain(ctx)
	if err == nil {
		err = hs.Shutdown(ctx)
	}
	if err != nil {
		hs.Close()
		log.Warn("shutdown grace ran out: connections closed with transfers in flight", "grace", d.grace)
		return
	}
	log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
}

// serveOn serves hs on ln: HTTPS with HTTP/2 when hs has a TLSConfig
// (its GetCertificate supplies the certificate), else plain HTTP.
func serveOn(hs *http.Server, ln net.Listener) error {
	if hs.TLSConfig != nil {
		return hs.ServeTLS(ln, "", "")
	}
	return hs.Serve(ln)
}
