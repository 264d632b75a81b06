package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// leakOptions ignore idle keep-alive connections of http.Transport: they
// are not leaks.
var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leakOptions...) }

// checkLeaks fails t if goroutines it started outlive it. Call it first:
// cleanups run last-in first-out, so this one runs after the test's
// servers, stores and fills are closed.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, leakOptions...) })
}

// env is a mirror in front of a fake upstream, with a controllable clock.
type env struct {
	t      *testing.T
	up     *fakeUpstream
	dir    string
	store  *cache.Store
	srv    *Server
	mirror *httptest.Server
	client *http.Client
	clock  *clock
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type envOption func(*Options, *cache.Options)

// newRegistry is a client of a fake upstream for tests: one endpoint, no
// retries unless opts say so, idle connections closed at cleanup.
func newRegistry(t *testing.T, name string, endpoints []string, opts ...func(*upstream.Options)) *upstream.Registry {
	t.Helper()
	tr := upstream.Transport(upstream.Timeouts{Dial: time.Second, TLSHandshake: time.Second, ResponseHeader: 5 * time.Second})
	t.Cleanup(tr.CloseIdleConnections)
	o := upstream.Options{Name: name, Endpoints: endpoints, Transport: tr, Retry: &upstream.Retry{Attempts: 1}}
	for _, f := range opts {
		f(&o)
	}
	reg, err := upstream.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// withRegistry adds an upstream registry.
func withRegistry(name string, up Upstream) envOption {
	return func(o *Options, _ *cache.Options) { o.Registries[name] = up }
}

func withPrefetch(on bool) envOption {
	return func(o *Options, _ *cache.Options) { o.Prefetch = on }
}

func newEnv(t *testing.T, up *fakeUpstream, opts ...envOption) *env {
	return newEnvIn(t, up, t.TempDir(), opts...)
}

func newEnvIn(t *testing.T, up *fakeUpstream, dir string, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, up: up, dir: dir, clock: &clock{now: time.Unix(1_700_000_000, 0)}}
	co := cache.Options{Dir: dir, StallTimeout: 5 * time.Second}
	var err error
	po := Options{Registries: map[string]Upstream{}, TagTTL: time.Minute, Now: e.clock.Now, PrefetchConcurrency: 2}
	if up != nil {
		po.Registries["docker.io"] = newRegistry(t, "docker.io", []string{up.srv.URL})
	}
	for _, o := range opts {
		o(&po, &co)
	}
	e.store, err = cache.Open(co)
	if err != nil {
		t.Fatal(err)
	}
	po.Store = e.store
	e.srv, err = New(po)
	if err != nil {
		t.Fatal(err)
	}
	e.mirror = httptest.NewServer(e.srv)
	ctr := &http.Transport{}
	e.client = &http.Client{Transport: ctr}
	t.Cleanup(func() {
		e.mirror.Close()
		e.srv.Close()
		e.store.Close()
		ctr.CloseIdleConnections()
	})
	return e
}

// stop closes the mirror early (to restart it on the same directory).
func (e *env) stop() {
	e.mirror.Close()
	e.srv.Close()
	e.store.Close()
}

type response struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (e *env) do(method, path string, header ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.mirror.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (e *env) get(path string, header ...string) response {
	e.t.Helper()
	return e.do(http.MethodGet, path, header...)
}

// errorCode is the first OCI error code of a response body.
func errorCode(t *testing.T, r response) string {
	t.Helper()
	var body wireErrors
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("not an OCI error body (status %d): %q", r.status, r.body)
	}
	return body.Errors[0].Code
}

const acceptAll = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"
