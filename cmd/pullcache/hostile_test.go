package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/config"
)

// mainListener serves the registry API through the same handler and
// http.Server settings as `pullcache serve`, in front of the test
// upstream, and returns its address.
func mainListener(t *testing.T, upstreamURL string) string {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	if err := cfg.SetUpstream("docker.io=" + upstreamURL); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	store, err := cache.Open(cache.Options{Dir: cfg.Data, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	obs := newObservers()
	srv, err := newProxy(cfg, store, log, reg, obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ui, err := consoleHandler(cfg, store, "http://"+ln.Addr().String(), obs, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(routes(srv, route{"/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}, route{"/ui/", ui}), log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		hs.Close()
		<-done
		srv.Close()
		store.Close()
	})
	return ln.Addr().String()
}

// rawRequest sends one request written by hand (so nothing cleans or
// escapes it) and reads the answer.
func rawRequest(t *testing.T, addr, requestLine string, header ...string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	b.WriteString(requestLine + "\r\nHost: mirror.test\r\nConnection: close\r\n")
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	go func() { _, _ = io.WriteString(conn, b.String()) }() // a server may answer before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%.80s: reading the answer: %v", requestLine, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestHostileRequestsGetOCIErrors sends requests no client should send to
// the real server stack: every /v2/ answer is a 4xx with an OCI error
// body, never a 5xx, never a redirect.
func TestHostileRequestsGetOCIErrors(t *testing.T) {
	up, digests := newTestUpstream(t)
	addr := mainListener(t, up.URL)
	long := strings.Repeat("a", 10_000)
	blob := cachedLayer(t, addr, digests["app:v1"])
	tests := []struct {
		name, line string
		header     []string
	}{
		{"traversal", "GET /v2/library/../../etc/passwd/manifests/v1 HTTP/1.1", nil},
		{"traversal above /v2", "GET /v2/../../v2/library/app/manifests/v1 HTTP/1.1", nil},
		{"traversal after the name", "GET /v2/library/app/manifests/../../x HTTP/1.1", nil},
		{"double slash", "GET /v2//library/app/manifests/v1 HTTP/1.1", nil},
		{"double slash inside", "GET /v2/library//app/blobs/" + blob + " HTTP/1.1", nil},
		{"double slash first", "GET //v2/library/app/manifests/v1 HTTP/1.1", nil},
		{"encoded dots", "GET /v2/library/%2e%2e/app/manifests/v1 HTTP/1.1", nil},
		{"encoded slash and dots", "GET /v2/library%2f..%2fapp/manifests/v1 HTTP/1.1", nil},
		{"encoded NUL", "GET /v2/library/app%00/manifests/v1 HTTP/1.1", nil},
		{"10k-character name", "GET /v2/" + long + "/manifests/v1 HTTP/1.1", nil},
		{"10k-character tag", "GET /v2/library/app/manifests/" + long + " HTTP/1.1", nil},
		{"10k-character digest", "GET /v2/library/app/blobs/sha256:" + long + " HTTP/1.1", nil},
		{"10k-character query", "GET /v2/library/app/tags/list?n=" + long + " HTTP/1.1", nil},
		{"invalid digest", "GET /v2/library/app/blobs/sha256:zz HTTP/1.1", nil},
		{"invalid manifest digest", "HEAD /v2/library/app/manifests/sha256:" + strings.Repeat("0", 63) + " HTTP/1.1", nil},
		{"unknown digest algorithm", "GET /v2/library/app/blobs/sha1:abcd HTTP/1.1", nil},
		{"range past the end", "GET /v2/library/app/blobs/" + blob + " HTTP/1.1", []string{"Range: bytes=99999999-"}},
		{"backwards range", "GET /v2/library/app/blobs/" + blob + " HTTP/1.1", []string{"Range: bytes=9-1"}},
		{"garbage range", "GET /v2/library/app/blobs/" + blob + " HTTP/1.1", []string{"Range: bytes=-"}},
		{"negative range", "GET /v2/library/app/blobs/" + blob + " HTTP/1.1", []string{"Range: bytes=--5"}},
		{"range of another unit", "GET /v2/library/app/blobs/" + blob + " HTTP/1.1", []string{"Range: lines=1-2"}},
		{"failed If-Match", "GET /v2/library/app/blobs/" + blob + " HTTP/1.1", []string{`If-Match: "nope"`}},
		{"unknown method", "FROB /v2/library/app/manifests/v1 HTTP/1.1", nil},
		{"PROPFIND", "PROPFIND /v2/ HTTP/1.1", nil},
		{"DELETE", "DELETE /v2/library/app/manifests/v1 HTTP/1.1", nil},
		{"PUT", "PUT /v2/library/app/manifests/v1 HTTP/1.1", []string{"Content-Length: 0"}},
		{"PATCH an upload", "PATCH /v2/library/app/blobs/uploads/x HTTP/1.1", []string{"Content-Length: 0"}},
		{"OPTIONS", "OPTIONS /v2/library/app/manifests/v1 HTTP/1.1", nil},
		{"TRACE", "TRACE /v2/ HTTP/1.1", nil},
		{"CONNECT", "CONNECT /v2/ HTTP/1.1", nil},
		{"huge header", "GET /v2/library/app/manifests/v1 HTTP/1.1", []string{"X-Big: " + strings.Repeat("b", 100<<10)}},
		{"many headers", "GET /v2/ HTTP/1.1", manyHeaders(5000)},
		{"bad ns", "GET /v2/library/app/manifests/v1?ns=../../x HTTP/1.1", nil},
		{"unconfigured ns", "GET /v2/library/app/manifests/v1?ns=169.254.169.254 HTTP/1.1", nil},
		{"bad n", "GET /v2/library/app/tags/list?n=-5 HTTP/1.1", nil},
		{"bad catalog n", "GET /v2/_catalog?n=x HTTP/1.1", nil},
		{"no such route", "GET /v2/library/app/nothing/here HTTP/1.1", nil},
		{"not the API", "GET /../../../etc/passwd HTTP/1.1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawRequest(t, addr, tc.line, tc.header...)
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("status %d (Location %q), want a 4xx", resp.StatusCode, resp.Header.Get("Location"))
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("status %d with Content-Type %q: %.200s", resp.StatusCode, ct, body)
			}
			if strings.HasPrefix(tc.line, "HEAD ") {
				return
			}
			var e struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
				t.Fatalf("status %d with a body that is not an OCI error: %.200s", resp.StatusCode, body)
			}
		})
	}
}

// TestRequestsNetHTTPAnswersItself: what never reaches a handler. These
// answers come from net/http, in plain text; the README says so.
func TestRequestsNetHTTPAnswersItself(t *testing.T) {
	up, _ := newTestUpstream(t)
	addr := mainListener(t, up.URL)
	tests := []struct {
		name, line string
		header     []string
		status     int
	}{
		{"malformed request line", "GET /v2/ HTTP/1.1 extra", nil, http.StatusBadRequest},
		{"method with a space", "G T /v2/ HTTP/1.1", nil, http.StatusBadRequest},
		{"headers beyond the server's limit", "GET /v2/ HTTP/1.1", []string{"X-Big: " + strings.Repeat("b", serverMaxHeaderBytes+8192)}, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := rawRequest(t, addr, tc.line, tc.header...)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

func manyHeaders(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("X-H%d: %s", i, strings.Repeat("v", 16))
	}
	return out
}

// cachedLayer pulls the first layer of the image through the mirror, so
// Range requests meet a cached blob, and returns its digest.
func cachedLayer(t *testing.T, addr string, image v1.Hash) string {
	t.Helper()
	resp, body := rawRequest(t, addr, "GET /v2/library/app/manifests/"+image.String()+" HTTP/1.1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: %d", resp.StatusCode)
	}
	m, err := v1.ParseManifest(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	d := m.Layers[0].Digest.String()
	if resp, _ := rawRequest(t, addr, "GET /v2/library/app/blobs/"+d+" HTTP/1.1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("blob: %d", resp.StatusCode)
	}
	return d
}
