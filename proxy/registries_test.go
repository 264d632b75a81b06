package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// countingTransport is a base transport that counts the connections it dials.
func countingTransport(t *testing.T, dials *atomic.Int64) *http.Transport {
	tr := upstream.Transport(upstream.Timeouts{Dial: time.Second, TLSHandshake: time.Second, ResponseHeader: 5 * time.Second})
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func TestRegistriesStayApart(t *testing.T) {
	anon := newFakeUpstream(t)
	basic := newFakeUpstream(t)
	basic.user, basic.password = "ci", "hunter2"
	bearer := newFakeUpstream(t)
	bearer.token = "tok"
	tlsUp := newTLSFakeUpstream(t)
	want := map[string]string{}
	for name, up := range map[string]*fakeUpstream{"docker.io": anon, "basic.lan": basic, "ghcr.io": bearer, "tls.lan": tlsUp} {
		// The same repository name in every registry, a different image in each.
		want[name] = up.push("org/app:v1", randomImage(t, 512, 1)).String()
	}
	pool := x509.NewCertPool()
	pool.AddCert(tlsUp.srv.Certificate())
	tlsTransport := upstream.Transport(upstream.DefaultTimeouts)
	tlsTransport.TLSClientConfig = &tls.Config{RootCAs: pool}
	t.Cleanup(tlsTransport.CloseIdleConnections)

	e := newEnv(t, anon, withPrefetch(false),
		withRegistry("basic.lan", newRegistry(t, "basic.lan", []string{basic.srv.URL}, func(o *upstream.Options) {
			o.Credentials = &authn.Basic{Username: "ci", Password: "hunter2"}
		})),
		withRegistry("ghcr.io", newRegistry(t, "ghcr.io", []string{bearer.srv.URL})),
		withRegistry("tls.lan", newRegistry(t, "tls.lan", []string{tlsUp.srv.URL}, func(o *upstream.Options) {
			o.Transport = tlsTransport
		})),
		func(o *Options, _ *cache.Options) { o.Hosts = map[string]string{"ghcr.mirror.lan": "ghcr.io"} },
	)
	tests := []struct {
		name, registry, path, host string
	}{
		{"default registry", "docker.io", "/v2/org/app/manifests/v1", ""},
		{"ns= of containerd", "basic.lan", "/v2/org/app/manifests/v1?ns=basic.lan", ""},
		{"path prefix of podman and docker", "ghcr.io", "/v2/ghcr.io/org/app/manifests/v1", ""},
		{"Host header", "ghcr.io", "/v2/org/app/manifests/v1", "ghcr.mirror.lan:5000"},
		{"TLS upstream with its own CA", "tls.lan", "/v2/tls.lan/org/app/manifests/v1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.mirror.URL+tc.path, nil)
			req.Header.Set("Accept", acceptAll)
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != 200 || got != want[tc.registry] {
				t.Errorf("status %d, digest %s; want %s's %s", resp.StatusCode, got, tc.registry, want[tc.registry])
			}
		})
	}
}

func TestUnconfiguredRegistryCausesNoConnection(t *testing.T) {
	var dials atomic.Int64
	up := newFakeUpstream(t)
	e := newEnv(t, nil, withRegistry("docker.io", newRegistry(t, "docker.io", []string{up.srv.URL}, func(o *upstream.Options) {
		o.Transport = countingTransport(t, &dials)
	})), func(o *Options, _ *cache.Options) {
		o.Allow = func(name string) (Upstream, bool) {
			if strings.HasSuffix(name, ".allowed.lan") {
				return newRegistry(t, name, []string{up.srv.URL}), true
			}
			return nil, false
		}
	})
	for _, path := range []string{
		"/v2/org/app/manifests/v1?ns=evil.example.com",
		"/v2/evil.example.com/org/app/manifests/v1",
		"/v2/evil.example.com/org/app/blobs/sha256:" + strings.Repeat("0", 64),
		"/v2/org/app/tags/list?ns=127.0.0.1:1",
	} {
		r := e.get(path)
		if r.status != http.StatusNotFound || errorCode(t, r) != CodeNameUnknown {
			t.Errorf("%s: status %d %s", path, r.status, r.body)
		}
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("refused requests dialled %d connections", n)
	}
	up.push("org/app:v1", randomImage(t, 128, 1))
	if r := e.get("/v2/org/app/manifests/v1?ns=x.allowed.lan", "Accept", acceptAll); r.status != 200 {
		t.Errorf("registry admitted by the allow-list: status %d %s", r.status, r.body)
	}
}

func TestEndpointFailover(t *testing.T) {
	down := newFakeUpstream(t)
	down.srv.Close()
	up := newFakeUpstream(t)
	d := up.push("library/app:v1", randomImage(t, 128, 1))
	e := newEnv(t, nil, withPrefetch(false), withRegistry("docker.io", newRegistry(t, "docker.io", []string{down.srv.URL, up.srv.URL})))
	r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	if r.status != 200 || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name       string
		fail       func(w http.ResponseWriter)
		status     int
		wantGets   int
		retryAfter string
	}{
		{"5xx is retried", func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) }, 200, 2, ""},
		{"429 with a short Retry-After is waited out", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		}, 200, 2, ""},
		{"429 with a long Retry-After goes to the client", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		}, 429, 1, "3600"},
		{"404 is final", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }, 404, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t)
			up.push("library/app:v1", randomImage(t, 128, 1))
			var failed atomic.Bool
			up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") && !failed.Swap(true) {
					tc.fail(w)
					return true
				}
				return false
			})
			reg := newRegistry(t, "docker.io", []string{up.srv.URL}, func(o *upstream.Options) {
				o.Retry = &upstream.Retry{Attempts: 3, Backoff: time.Millisecond, MaxRetryAfter: time.Second}
			})
			e := newEnv(t, nil, withPrefetch(false), withRegistry("docker.io", reg))
			r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if n := up.calls("GET manifests"); n != tc.wantGets {
				t.Errorf("upstream GETs = %d, want %d", n, tc.wantGets)
			}
			if got := r.header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
		})
	}
}

func TestPublicRegistryNeverDialsPrivateAddresses(t *testing.T) {
	up := newFakeUpstream(t)
	up.push("library/app:v1", randomImage(t, 128, 1))
	// Not a LAN registry, so its own loopback endpoint (as a redirect to
	// the mirror's network would be) is refused before any connection.
	reg, err := upstream.New(upstream.Options{Name: "docker.io", Endpoints: []string{up.srv.URL}, Retry: &upstream.Retry{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, withRegistry("docker.io", reg))
	r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	if r.status != http.StatusForbidden {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if n := up.calls(""); n != 0 {
		t.Errorf("the private address was reached %d times", n)
	}
}

func TestCredentialsNeverReachLogsOrClients(t *testing.T) {
	up := newFakeUpstream(t)
	up.user, up.password = "ci", "right"
	up.push("library/app:v1", randomImage(t, 128, 1))
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := newRegistry(t, "docker.io", []string{up.srv.URL}, func(o *upstream.Options) {
		o.Credentials = &authn.Basic{Username: "ci", Password: "wrong-s3cret-pw"}
		o.Logger = log
	})
	e := newEnv(t, nil, withRegistry("docker.io", reg), func(o *Options, _ *cache.Options) { o.Logger = log })
	r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	if r.status != http.StatusForbidden || errorCode(t, r) != CodeDenied {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	for where, text := range map[string]string{"log": logs.String(), "response": string(r.body) + fmt.Sprint(r.header)} {
		if strings.Contains(text, "wrong-s3cret-pw") || strings.Contains(text, "Y2k6d3Jvbmc") {
			t.Errorf("the password appears in the %s", where)
		}
	}
	if !strings.Contains(logs.String(), "upstream") {
		t.Error("the failure was not logged")
	}
}
