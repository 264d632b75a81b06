package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pullcache/pullcache/health"
)

func TestHealthURL(t *testing.T) {
	tests := []struct{ listen, want string }{
		{":5000", "http://127.0.0.1:5000/healthz"},
		{"0.0.0.0:5000", "http://127.0.0.1:5000/healthz"},
		{"[::]:5000", "http://127.0.0.1:5000/healthz"},
		{"127.0.0.1:6000", "http://127.0.0.1:6000/healthz"},
		{"10.1.2.3:5000", "http://10.1.2.3:5000/healthz"},
		{"[::1]:5000", "http://[::1]:5000/healthz"},
		{"mirror.lan:5000", "http://mirror.lan:5000/healthz"},
	}
	for _, tc := range tests {
		if got := healthURL(tc.listen, "/healthz"); got != tc.want {
			t.Errorf("healthURL(%q) = %q, want %q", tc.listen, got, tc.want)
		}
	}
}

// TestHealth runs `pullcache health` against servers that are healthy,
// failing and gone: exit 0 with one line on stdout, or exit 1 with one line
// on stderr naming the URL.
func TestHealth(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer healthy.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	gone := closedAddr(t)
	listenOf := func(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in stdout when healthy, in stderr otherwise
	}{
		{"healthy by --listen", []string{"--listen", listenOf(healthy)}, 0, "ok: " + healthy.URL + "/healthz"},
		{"healthy by --url", []string{"--url", healthy.URL + "/healthz"}, 0, "ok: " + healthy.URL + "/healthz"},
		{"answers 503", []string{"--listen", listenOf(failing)}, 1, "503 Service Unavailable"},
		{"not listening", []string{"--listen", gone}, 1, "connection refused"},
		{"stray argument", []string{"--listen", listenOf(healthy), "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"health"}, tc.args...)...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tc.wantCode, stdout, stderr)
			}
			out, quiet := stderr, stdout
			if tc.wantCode == 0 {
				out, quiet = stdout, stderr
			}
			if quiet != "" {
				t.Errorf("unexpected output %q", quiet)
			}
			if ls := lines(out); len(ls) != 1 {
				t.Errorf("want one line, got %q", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q does not contain %q", out, tc.want)
			}
		})
	}
}

// TestHealthReady runs `pullcache health --ready` against /readyz in each
// state: ready and degraded exit 0 and say so, not ready exits 1 with the
// reason.
func TestHealthReady(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(r *health.Readiness)
		wantCode int
		want     string
	}{
		{"ready", func(*health.Readiness) {}, 0, "ok: "},
		{"degraded", func(r *health.Readiness) {
			r.Add("disk", func() (health.State, string) { return health.Degraded, "disk full: 1 MiB free" })
		}, 0, "degraded (disk: disk full: 1 MiB free): "},
		{"loading", func(r *health.Readiness) { r.SetLoading(true) }, 1, "503 Service Unavailable: unready (loading: the index is loading)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := health.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(r)
			srv := httptest.NewServer(routes(http.NotFoundHandler(), route{"/readyz", r}))
			defer srv.Close()
			code, stdout, stderr := runCLI(t, "health", "--ready", "--listen", strings.TrimPrefix(srv.URL, "http://"))
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tc.wantCode, stdout, stderr)
			}
			out := stdout
			if tc.wantCode != 0 {
				out = stderr
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q does not contain %q", out, tc.want)
			}
			if !strings.Contains(out, srv.URL+"/readyz") {
				t.Errorf("output %q does not name %s/readyz", out, srv.URL)
			}
		})
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
