// Package upstream talks to the registries pullcache mirrors: manifest and
// blob fetches, HEAD revalidation and tag lists, on go-containerregistry's
// transports (ping, Basic and Bearer challenges, token refresh). Every
// response goes through one check that reads the registry's error body and
// classifies it (see Kind).
//
// It does not cache and does not verify blob bytes: the cache verifies
// while it writes, which is the one place every byte passes.
package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
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
	// Endpoint is the registry's base URL, e.g. https://registry-1.docker.io.
	Endpoint string
	// Auth authenticates to the registry. Default: anonymous.
	Auth authn.Authenticator
	// Transport is the base transport. Default: Transport(DefaultTimeouts).
	Transport http.RoundTripper
	// Logger receives one line per failed upstream request. Default: discard.
	Logger *slog.Logger
}

// Registry is one upstream registry endpoint.
type Registry struct {
	name   string
	reg    name.Registry
	auth   authn.Authenticator
	base   http.RoundTripper
	log    *slog.Logger
	scoped *lru.Cache[string, http.RoundTripper]
}

// maxManifestSize bounds a manifest body, as the reference registry does.
const maxManifestSize = 4 << 20

// New returns a client of one registry endpoint.
func New(opts Options) (*Registry, error) {
	u, err := url.Parse(opts.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("registry %s: endpoint %q is not an http(s) URL", opts.Name, opts.Endpoint)
	}
	var nameOpts []name.Option
	if u.Scheme == "http" {
		nameOpts = append(nameOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", opts.Name, err)
	}
	if opts.Auth == nil {
		opts.Auth = authn.Anonymous
	}
	if opts.Transport == nil {
		opts.Transport = Transport(DefaultTimeouts)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	scoped, _ := lru.New[string, http.RoundTripper](1024)
	return &Registry{name: opts.Name, reg: reg, auth: opts.Auth, base: opts.Transport, log: opts.Logger, scoped: scoped}, nil
}

// Name is the registry's name as clients know it.
func (r *Registry) Name() string { return r.name }

// Timeouts bound the phases of an upstream request. A body that stalls is
// the caller's to bound (the cache fails a fill that stalls).
type Timeouts struct {
	Dial, TLSHandshake, ResponseHeader time.Duration
}

// DefaultTimeouts suit a registry across the internet.
var DefaultTimeouts = Timeouts{Dial: 10 * time.Second, TLSHandshake: 10 * time.Second, ResponseHeader: 30 * time.Second}

// Transport returns a base transport with the given timeouts.
func Transport(t Timeouts) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: t.Dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   t.TLSHandshake,
		ResponseHeaderTimeout: t.ResponseHeader,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
	}
}

// client returns an HTTP client authorised to pull repo. The token dance
// happens once per repository and is kept; go-containerregistry's bearer
// transport refreshes an expired token on a 401 and never sends the
// registry's credentials to another host (a CDN a blob redirects to).
func (r *Registry) client(ctx context.Context, repo string) (*http.Client, error) {
	if t, ok := r.scoped.Get(repo); ok {
		return &http.Client{Transport: t}, nil
	}
	scope := "repository:" + repo + ":" + transport.PullScope
	t, err := transport.NewWithContext(ctx, r.reg, r.auth, r.base, []string{scope})
	if err != nil {
		return nil, r.wrap("authenticate", repo, err)
	}
	r.scoped.Add(repo, t)
	return &http.Client{Transport: t}, nil
}

func (r *Registry) url(repo, kind, ref string) string {
	// The scheme is a placeholder: the transport rewrites it to what the
	// ping found (https, or http for an insecure registry).
	u := url.URL{Scheme: "https", Host: r.reg.RegistryStr(), Path: "/v2/" + repo + "/" + kind + "/" + ref}
	return u.String()
}

func (r *Registry) do(ctx context.Context, method, repo, rawURL string, header http.Header, codes ...int) (*http.Response, error) {
	c, err := r.client(ctx, repo)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, r.wrap(method, repo, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, r.wrap(method, repo, err)
	}
	if err := transport.CheckError(resp, codes...); err != nil {
		resp.Body.Close()
		return nil, r.wrapResp(method, repo, err, resp)
	}
	return resp, nil
}
