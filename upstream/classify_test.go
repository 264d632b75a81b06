package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// testTimeouts keep a test that goes wrong from hanging for long.
var testTimeouts = Timeouts{Dial: 5 * time.Second, TLSHandshake: 5 * time.Second, ResponseHeader: 10 * time.Second}

// newTestRegistry is a client of endpoints: a LAN registry (the endpoints
// are httptest servers on loopback) with one attempt per endpoint, changed
// by mods.
func newTestRegistry(t *testing.T, endpoints []string, mods ...func(*Options)) *Registry {
	t.Helper()
	opts := Options{
		Name:      "test.lan",
		Endpoints: endpoints,
		LAN:       true,
		Retry:     &Retry{Attempts: 1},
		Timeouts:  testTimeouts,
	}
	for _, m := range mods {
		m(&opts)
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if tr, ok := r.base.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
	})
	return r
}

// serveRegistry is an httptest registry that answers the /v2/ ping with 200
// and everything else with h.
func serveRegistry(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// closedPortURL is the URL of a loopback port nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// status answers with code, an OCI error body and the given headers.
func status(code int, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"errors":[{"code":"X","message":"status %d"}]}`, code)
	}
}

// TestKindOfUpstreamFailures: each upstream failure is classified, and a
// Retry-After is read into RetryAfter. An HTTP-date is read against the
// clock at some instant of the request, so its delay is bounded by the
// clock read before and after the request, however long that took.
func TestKindOfUpstreamFailures(t *testing.T) {
	tests := []struct {
		name string
		// handler serves everything but the ping; ignored when url is set.
		handler http.HandlerFunc
		url     func(t *testing.T) string
		want    Kind
		// RetryAfter must lie in [minRetry, maxRetry].
		minRetry, maxRetry time.Duration
	}{
		{name: "404", handler: status(http.StatusNotFound), want: NotFound},
		{name: "401", handler: status(http.StatusUnauthorized), want: Denied},
		{name: "403", handler: status(http.StatusForbidden), want: Denied},
		{name: "429 without Retry-After", handler: status(http.StatusTooManyRequests), want: TooManyRequests},
		{name: "429 Retry-After seconds", handler: status(http.StatusTooManyRequests, "Retry-After", "7"),
			want: TooManyRequests, minRetry: 7 * time.Second, maxRetry: 7 * time.Second},
		// handler and bounds set in the subtest: see retryInAMinute.
		{name: "429 Retry-After HTTP-date", want: TooManyRequests},
		{name: "429 Retry-After garbage", handler: status(http.StatusTooManyRequests, "Retry-After", "soon"), want: TooManyRequests},
		{name: "500", handler: status(http.StatusInternalServerError), want: Unavailable},
		{name: "502", handler: status(http.StatusBadGateway), want: Unavailable},
		{name: "503", handler: status(http.StatusServiceUnavailable), want: Unavailable},
		{name: "400", handler: status(http.StatusBadRequest), want: Invalid},
		{name: "connection refused", url: closedPortURL, want: Unavailable},
		{name: "digest mismatch", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
			w.Write([]byte(`{"schemaVersion":2}`))
		}, want: Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var date time.Time
			if tc.handler == nil && tc.url == nil {
				date, tc.handler = retryInAMinute()
			}
			var url string
			if tc.url != nil {
				url = tc.url(t)
			} else {
				url = serveRegistry(t, tc.handler).URL
			}
			r := newTestRegistry(t, []string{url})
			before := time.Now()
			_, err := r.GetManifest(context.Background(), "org/app", "v1", []string{"application/vnd.oci.image.manifest.v1+json"})
			if !date.IsZero() {
				tc.minRetry, tc.maxRetry = time.Until(date), date.Sub(before)
			}
			if err == nil {
				t.Fatal("GetManifest succeeded, want an error")
			}
			if got := KindOf(err); got != tc.want {
				t.Errorf("KindOf(%v) = %s, want %s", err, got, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if e.RetryAfter < tc.minRetry || e.RetryAfter > tc.maxRetry {
				t.Errorf("RetryAfter = %s, want within [%s, %s]", e.RetryAfter, tc.minRetry, tc.maxRetry)
			}
			if e.Registry != "test.lan" {
				t.Errorf("Registry = %q, want test.lan", e.Registry)
			}
		})
	}
}

// retryInAMinute answers 429 with a Retry-After HTTP-date about a minute
// ahead, and returns that date (HTTP-dates have whole seconds).
func retryInAMinute() (time.Time, http.HandlerFunc) {
	date := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	return date, status(http.StatusTooManyRequests, "Retry-After", date.Format(http.TimeFormat))
}

func TestKindOfCanceled(t *testing.T) {
	srv := serveRegistry(t, status(http.StatusOK))
	r := newTestRegistry(t, []string{srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.GetManifest(ctx, "org/app", "v1", nil)
	if got := KindOf(err); got != Canceled {
		t.Errorf("KindOf(%v) = %s, want canceled", err, got)
	}
}

func TestKindOfPlainErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"plain error", errors.New("boom"), Unavailable},
		{"context canceled", context.Canceled, Canceled},
		{"wrapped context canceled", fmt.Errorf("fetch: %w", context.Canceled), Canceled},
		{"deadline", context.DeadlineExceeded, Unavailable},
		{"wrapped *Error", fmt.Errorf("x: %w", &Error{Kind: NotFound}), NotFound},
		{"joined *Error", errors.Join(errors.New("a"), &Error{Kind: TooManyRequests}), TooManyRequests},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := KindOf(tc.err); got != tc.want {
				t.Errorf("KindOf = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{
		Unavailable: "unavailable", NotFound: "not_found", Denied: "denied",
		TooManyRequests: "too_many_requests", Invalid: "invalid", Canceled: "canceled",
	}
	for k, s := range want {
		if got := k.String(); got != s {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, s)
		}
	}
}

// TestRetryAfterHeader runs in a synctest bubble, whose clock starts on a
// whole second and stands still: a date two minutes ahead is exactly that.
func TestRetryAfterHeader(t *testing.T) {
	tests := []struct {
		name  string
		value string // a time layout when in2m is set
		in2m  bool
		want  time.Duration
	}{
		{"seconds", "7", false, 7 * time.Second},
		{"zero", "0", false, 0},
		{"negative", "-3", false, 0},
		{"empty", "", false, 0},
		{"garbage", "soon", false, 0},
		{"HTTP-date in two minutes", http.TimeFormat, true, 2 * time.Minute},
		{"RFC 850 date in two minutes", "Monday, 02-Jan-06 15:04:05 GMT", true, 2 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				v := tc.value
				if tc.in2m {
					v = time.Now().Add(2 * time.Minute).UTC().Format(tc.value)
				}
				if got := retryAfter(v); got != tc.want {
					t.Errorf("retryAfter(%q) = %s, want %s", v, got, tc.want)
				}
			})
		})
	}
}

// TestErrorsCarryNoCredentials: an upstream error, which is logged, names
// the registry and operation but never the password.
func TestErrorsCarryNoCredentials(t *testing.T) {
	const password = "hunter2-e5b1"
	srv := serveRegistry(t, status(http.StatusForbidden))
	r := newTestRegistry(t, []string{srv.URL}, func(o *Options) {
		o.Credentials = &authn.Basic{Username: "ci", Password: password}
	})
	_, err := r.GetManifest(context.Background(), "org/app", "v1", nil)
	if err == nil {
		t.Fatal("GetManifest succeeded, want 403")
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error %q holds the password", err)
	}
	if !strings.Contains(err.Error(), "test.lan") {
		t.Errorf("error %q does not name the registry", err)
	}
}
