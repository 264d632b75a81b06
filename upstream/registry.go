// Package upstream talks to the registries pullcache mirrors: manifest and
// blob fetches, HEAD revalidation and tag lists, on go-containerregistry's
// transports (ping, Basic and Bearer challenges, token refresh). Every
// response goes through one check that reads the registry's error body and
// classifies it (see Kind). A registry may have several endpoints, tried in
// order; idempotent requests are retried with jittered backoff.
//
// It does not cache and does not verify blob bytes: the cache verifies
// while it writes, which is the one place every byte passes.
package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Options configure a Registry.
type Options struct {
	// Name is the registry's name as clients know it, e.g. docker.io.
	Name string
	// Endpoints are base URLs, tried in order; required.
	Endpoints []string
	// Credentials are what the mirror presents to the registry. Default:
	// none (anonymous).
	Credentials authn.Authenticator
	// TLS configures TLS to the registry (CA bundle, client certificate).
	// Default: the system's roots.
	TLS *tls.Config
	// LAN allows connections and redirects to loopback, link-local and
	// private addresses. Default false: a public registry that redirects
	// there is refused.
	LAN bool
	// MaxConcurrency bounds requests in flight to the registry (a blob
	// counts until its body is closed). Default 32.
	MaxConcurrency int
	// Timeouts bound connecting and waiting for response headers.
	// Default DefaultTimeouts.
	Timeouts Timeouts
	// Retry is the retry policy. Default DefaultRetry.
	Retry *Retry
	// Transport replaces the base transport (tests). Default: built from
	// TLS and Timeouts.
	Transport http.RoundTripper
	// Logger receives one line per failed attempt. Default: discard.
	Logger *slog.Logger
	// ProbeInterval is how often a failing endpoint is probed (GET /v2/)
	// while something asks about it. Default DefaultProbeInterval.
	ProbeInterval time.Duration
	// Metrics, if set, are told of the endpoints' health under
	// MetricLabel (default Name).
	Metrics     *Metrics
	MetricLabel string
}

// Registry is a client of one upstream registry.
type Registry struct {
	name      string
	endpoints []*endpoint
	creds     authn.Authenticator
	base      http.RoundTripper
	lan       bool
	retry     Retry
	sem       chan struct{}
	log       *slog.Logger

	probeEvery time.Duration
	metrics    *Metrics
	label      string
}

// endpoint is one base URL of a registry, with its authorised transports.
type endpoint struct {
	scheme string // of the configured URL; probes use it
	host   string
	reg    name.Registry
	scoped *lru.Cache[string, http.RoundTripper]
	health health
}

// maxManifestSize bounds a manifest body, as the reference registry does.
const maxManifestSize = 4 << 20

// New returns a client of a registry. It does not connect.
func New(opts Options) (*Registry, error) {
	if len(opts.Endpoints) == 0 {
		return nil, fmt.Errorf("registry %s: no endpoint", opts.Name)
	}
	r := &Registry{name: opts.Name, creds: opts.Credentials, lan: opts.LAN, log: opts.Logger, base: opts.Transport,
		probeEvery: opts.ProbeInterval, metrics: opts.Metrics, label: opts.MetricLabel}
	if r.probeEvery <= 0 {
		r.probeEvery = DefaultProbeInterval
	}
	if r.label == "" {
		r.label = opts.Name
	}
	r.metrics.Observe(r.label)
	for _, raw := range opts.Endpoints {
		ep, err := newEndpoint(opts.Name, raw)
		if err != nil {
			return nil, err
		}
		r.endpoints = append(r.endpoints, ep)
	}
	if r.creds == nil {
		r.creds = authn.Anonymous
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if opts.Timeouts == (Timeouts{}) {
		opts.Timeouts = DefaultTimeouts
	}
	if r.base == nil {
		r.base = baseTransport(opts.Timeouts, opts.TLS, opts.LAN)
	}
	r.retry = DefaultRetry
	if opts.Retry != nil {
		r.retry = *opts.Retry
	}
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = 32
	}
	r.sem = make(chan struct{}, opts.MaxConcurrency)
	return r, nil
}

func newEndpoint(registry, raw string) (*endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("registry %s: endpoint %q is not an http(s) URL", registry, raw)
	}
	var nameOpts []name.Option
	if u.Scheme == "http" {
		nameOpts = append(nameOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", registry, err)
	}
	scoped, _ := lru.New[string, http.RoundTripper](1024)
	return &endpoint{scheme: u.Scheme, host: u.Host, reg: reg, scoped: scoped}, nil
}

// Timeouts bound the phases of an upstream request. A body that stalls is
// the caller's to bound (the cache fails a fill that stalls).
type Timeouts struct {
	Dial, TLSHandshake, ResponseHeader time.Duration
}

// DefaultTimeouts suit a registry across the internet.
var DefaultTimeouts = Timeouts{Dial: 10 * time.Second, TLSHandshake: 10 * time.Second, ResponseHeader: 30 * time.Second}

// Transport returns a base transport with the given timeouts (no address
// restrictions; for tests and LAN registries).
func Transport(t Timeouts) *http.Transport { return baseTransport(t, nil, true) }

func baseTransport(t Timeouts, tlsConf *tls.Config, lan bool) *http.Transport {
	d := &net.Dialer{Timeout: t.Dial, KeepAlive: 30 * time.Second}
	dial := d.DialContext
	if !lan {
		guarded := &net.Dialer{Timeout: t.Dial, KeepAlive: 30 * time.Second, Control: refusePrivate}
		dial = guardedDial(d, guarded, proxyAddrs(os.Getenv))
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   t.TLSHandshake,
		ResponseHeaderTimeout: t.ResponseHeader,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
	}
}

// client returns an HTTP client of ep authorised to pull repo. The token
// dance happens once per repository and is kept; go-containerregistry's
// bearer transport refreshes an expired token on a 401 and sends the
// registry's credentials to no other host (a CDN a blob redirects to).
func (r *Registry) client(ctx context.Context, ep *endpoint, repo string) (*http.Client, error) {
	t, ok := ep.scoped.Get(repo)
	if !ok {
		scope := "repository:" + repo + ":" + transport.PullScope
		var err error
		t, err = transport.NewWithContext(ctx, ep.reg, r.creds, r.base, []string{scope})
		if err != nil {
			return nil, err
		}
		ep.scoped.Add(repo, t)
	}
	return &http.Client{Transport: t, CheckRedirect: r.checkRedirect}, nil
}

// errPrivateAddress refuses a connection to a loopback, link-local or
// private address for a registry that is not on the LAN.
var errPrivateAddress = errors.New("refusing to connect to a private, loopback or link-local address (the registry is not configured as a LAN registry)")

// checkRedirect follows redirects (blob storage redirects to CDNs) up to a
// bound; where a redirect may lead is checked when it is dialled.
func (r *Registry) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// refusePrivate is a net.Dialer Control function: it runs on the resolved
// address, so neither a redirect nor DNS can lead a public registry's
// connection to the mirror's own network.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() {
		return fmt.Errorf("%s: %w", address, errPrivateAddress)
	}
	return nil
}

// guardedDial dials the configured HTTP proxies (which may well sit on a
// private address) directly, and everything else through the guard.
func guardedDial(plain, guarded *net.Dialer, proxies map[string]bool) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if proxies[addr] {
			return plain.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// proxyAddrs are the host:port of the HTTP proxies named in the
// environment, as http.ProxyFromEnvironment reads them.
func proxyAddrs(getenv func(string) string) map[string]bool {
	out := map[string]bool{}
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		v := getenv(k)
		if v == "" {
			continue
		}
		if !strings.Contains(v, "://") {
			v = "http://" + v
		}
		u, err := url.Parse(v)
		if err != nil || u.Hostname() == "" {
			continue
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"https": "443", "socks5": "1080"}[u.Scheme]
			if port == "" {
				port = "80"
			}
		}
		out[net.JoinHostPort(u.Hostname(), port)] = true
	}
	return out
}

func (r *Registry) url(ep *endpoint, pathAndQuery string) string {
	// The scheme is a placeholder: the transport rewrites it to what the
	// ping found (https, or http for an insecure registry).
	return "https://" + ep.reg.RegistryStr() + pathAndQuery
}
