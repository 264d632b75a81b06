// Package proxy is pullcache's HTTP side: the pull half of the OCI
// distribution API. Each request is parsed once into a Request, routed to a
// configured upstream registry (ns= query, path prefix, default), answered
// from the cache where it can be and from the upstream through the cache
// where it cannot. It writes one log line and metrics per request.
//
// It is not a registry: it accepts no pushes, and it never forwards a
// request to a registry that is not configured.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/pullcache/pullcache/auth"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/stats"
	"github.com/pullcache/pullcache/upstream"
)

// Upstream is what the proxy needs of a registry client (upstream.Source,
// said there so that the decorators cmd puts in front of a client can
// name it too).
type Upstream = upstream.Source

// Options configure a Server.
type Options struct {
	// Store is the cache; required.
	Store *cache.Store
	// Registries are the upstreams by registry name; at least one.
	Registries map[string]Upstream
	// Hosts maps a request's Host (without port) to a registry. Default none.
	Hosts map[string]string
	// Allow, if set, is asked for a registry that is not in Registries; it
	// returns a client when the registry is allowed. Default: none allowed.
	Allow func(registry string) (Upstream, bool)
	// DefaultRegistry serves requests that name none. Default docker.io.
	DefaultRegistry string
	// TagTTL is how long a tag (and a tag or referrers list) is served
	// without asking upstream. Default 0: every request asks (pullcache
	// serve passes 5m).
	TagTTL time.Duration
	// Prefetch starts fetching a manifest's blobs when it comes from upstream.
	Prefetch bool
	// PrefetchPlatforms are the platforms whose child manifests (and so
	// their layers) an index prefetches. Default none.
	PrefetchPlatforms []v1.Platform
	// PrefetchConcurrency bounds the blobs one manifest prefetches at once. Default 4.
	PrefetchConcurrency int
	// UpstreamTimeout bounds a manifest or tag-list fetch, which goes on in
	// the background when its waiters gave up. Default 60s.
	UpstreamTimeout time.Duration
	// ResponseTimeout bounds how long a request waits for an upstream
	// before it is answered (503 UNAVAILABLE when nothing is cached).
	// Default 20s.
	ResponseTimeout time.Duration
	// RevalidateTimeout bounds how long revalidating a tag (or a tag or
	// referrers list) that has a cached copy holds a client; then the
	// cached copy is served with a Warning. Default 5s.
	RevalidateTimeout time.Duration
	// NegativeTTL is how long an upstream 404 for a manifest, blob or tag
	// list of a repository is remembered and answered without asking
	// again. Default 0: not remembered (pullcache serve passes 30s).
	NegativeTTL time.Duration
	// Auth, when set, authenticates every registry API request and decides
	// it by the access rules. Default nil: no logins, everyone may pull.
	Auth *auth.Authenticator
	// Trusted, when set, is asked of every request first: a request it
	// trusts (another member of a cluster, carrying the shared secret)
	// passes neither logins nor access rules. Default nil: none trusted.
	Trusted func(*http.Request) bool
	// Offline serves only what is cached: no upstream is ever contacted,
	// tags resolve to the last digest known, and anything else is unknown.
	Offline bool
	// Logger receives one line per request. Default: discard.
	Logger *slog.Logger
	// Metrics registers the server's metrics. Default: none registered.
	Metrics prometheus.Registerer
	// Stats, when set, is told of every answer and every upstream request
	// (the console's live figures). Default: none.
	Stats *stats.Recorder
	// DefaultPlatform is the platform whose image a Docker manifest list is
	// answered with for a client that accepts no list type. Default
	// linux/amd64.
	DefaultPlatform v1.Platform
	// MaxHeaderBytes bounds a request's line and headers; a larger request
	// is answered 431 with an OCI error. Default 64 KiB (registry clients
	// send a few KiB at most, a bearer token included). The HTTP server's
	// own limit must be larger, or it answers first in plain text.
	MaxHeaderBytes int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Server answers the registry API.
type Server struct {
	opts     Options
	store    *cache.Store
	log      *slog.Logger
	metrics  *metrics
	flights  singleflight.Group
	negative *negativeCache
	allowed  sync.Map // registry name → Upstream, built by Allow
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

// New returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || len(opts.Registries) == 0 {
		return nil, errors.New("proxy: a store and at least one registry are required")
	}
	if opts.DefaultRegistry == "" {
		opts.DefaultRegistry = dockerHub
	}
	if opts.PrefetchConcurrency <= 0 {
		opts.PrefetchConcurrency = 4
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = 60 * time.Second
	}
	if opts.ResponseTimeout <= 0 {
		opts.ResponseTimeout = 20 * time.Second
	}
	if opts.RevalidateTimeout <= 0 {
		opts.RevalidateTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = 64 << 10
	}
	if opts.DefaultPlatform.OS == "" {
		opts.DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	regs := make(map[string]Upstream, len(opts.Registries))
	for name, up := range opts.Registries {
		if opts.Offline {
			up = offlineUpstream{}
		}
		regs[name] = countUpstream(up, opts.Stats)
	}
	opts.Registries = regs
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{opts: opts, store: opts.Store, log: opts.Logger, metrics: m, bgCtx: ctx, bgCancel: cancel,
		negative: newNegativeCache(opts.NegativeTTL, opts.Now)}, nil
}

// Close stops background work (prefetch) and waits for it. It does not
// close the store.
func (s *Server) Close() {
	s.bgCancel()
	s.bg.Wait()
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := s.observe(w, r)
	defer rec.finish()
	if r.URL.Path == "/healthz" {
		rec.route = "health"
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	// Every answer, errors included, says which API it speaks.
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	var req Request
	err := s.checkHeaderSize(r)
	if err == nil {
		req, err = ParseRequest(r.Method, r.URL.Path, r.URL.Query())
	}
	if err == nil {
		rec.route = req.Route.String()
		err = s.dispatch(rec, r, req)
	}
	if err != nil {
		rec.fail(r, err, notFoundFor(req.Route))
	}
}

// checkHeaderSize refuses a request whose line and headers, counted as on
// the wire, exceed MaxHeaderBytes.
func (s *Server) checkHeaderSize(r *http.Request) error {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len(r.Host) + 12 // spaces, "Host: ", CRLFs
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	if n <= s.opts.MaxHeaderBytes {
		return nil
	}
	return newError(http.StatusRequestHeaderFieldsTooLarge, CodeUnsupported,
		"request headers of "+strconv.Itoa(n)+" bytes exceed this mirror's limit of "+strconv.Itoa(s.opts.MaxHeaderBytes))
}

func (s *Server) dispatch(w *recorder, r *http.Request, req Request) error {
	if req.NS != "" {
		// Echoed as the distribution spec's proxying section describes.
		w.Header().Set("OCI-Namespace", req.NS)
	}
	var up Upstream
	if req.Route != RouteBase {
		var err error
		if up, req, err = s.resolve(req, r.Host); err != nil {
			// With logins on, a client that has not logged in learns
			// nothing here, not even which registries are configured.
			if derr := s.authorizeUnrouted(r, req); derr != nil && !s.trusted(r) {
				return derr
			}
			return err
		}
		w.registry = req.Registry
	}
	// Every route is decided here, on the parsed and resolved request,
	// before its handler runs: a route added later is covered by
	// construction.
	if !s.trusted(r) {
		if err := s.authorize(w, r, req); err != nil {
			return err
		}
	}
	switch req.Route {
	case RouteBase:
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte("{}"))
		return err
	case RouteManifest:
		return s.serveManifest(w, r, up, req)
	case RouteBlob:
		return s.serveBlob(w, r, up, req)
	case RouteTags:
		return s.serveTags(w, r, up, req)
	case RouteReferrers:
		return s.serveReferrers(w, r, up, req)
	case RouteCatalog:
		return s.serveCatalog(w, r, req)
	}
	return errNoRoute
}

func (s *Server) trusted(r *http.Request) bool {
	return s.opts.Trusted != nil && s.opts.Trusted(r)
}

// resolve finds the upstream of a request: ns= or a path prefix (parsed
// already), else the Host header, else the default registry. A registry
// that is not configured (nor allowed) is refused before anything leaves
// the machine: the mirror is never an open proxy.
func (s *Server) resolve(req Request, host string) (Upstream, Request, error) {
	name := req.Registry
	if name == "" {
		name = s.opts.Hosts[hostOnly(host)]
	}
	if name == "" {
		name = s.opts.DefaultRegistry
	}
	up, ok := s.upstreamFor(name)
	if !ok {
		return nil, req, newError(http.StatusNotFound, CodeNameUnknown,
			"registry "+name+" is not configured on this mirror")
	}
	return up, req.withRegistry(name), nil
}

func (s *Server) upstreamFor(name string) (Upstream, bool) {
	if up, ok := s.opts.Registries[name]; ok {
		return up, true
	}
	if s.opts.Allow == nil || s.opts.Offline {
		return nil, false
	}
	if up, ok := s.allowed.Load(name); ok {
		return up.(Upstream), true
	}
	up, ok := s.opts.Allow(name)
	if !ok {
		return nil, false
	}
	up2, _ := s.allowed.LoadOrStore(name, countUpstream(up, s.opts.Stats))
	return up2.(Upstream), true
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(h)
	}
	return strings.ToLower(hostport)
}

func notFoundFor(r Route) *Error {
	switch r {
	case RouteManifest:
		return newError(http.StatusNotFound, CodeManifestUnknown, "manifest unknown")
	case RouteBlob:
		return newError(http.StatusNotFound, CodeBlobUnknown, "blob unknown")
	}
	return newError(http.StatusNotFound, CodeNameUnknown, "repository name not known to registry")
}
