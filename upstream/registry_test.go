package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// memTransport answers requests in memory with a handler, so tests can run
// inside a synctest bubble (no sockets) and count what was asked, by host.
type memTransport struct {
	h http.Handler

	mu   sync.Mutex
	reqs []string // "HOST METHOD PATH"
}

func (m *memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	m.mu.Lock()
	m.reqs = append(m.reqs, req.URL.Host+" "+req.Method+" "+req.URL.Path)
	m.mu.Unlock()
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// count is the number of requests whose "HOST METHOD PATH" contains s.
func (m *memTransport) count(s string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.reqs {
		if strings.Contains(r, s) {
			n++
		}
	}
	return n
}

// pingOK answers the /v2/ ping, and everything else with h.
func pingOK(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		h(w, r)
	}
}

var blobDigest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}

// TestMaxConcurrencyHoldsSlotUntilBodyClosed: with MaxConcurrency 1, a blob
// whose body is open holds the registry's only slot; a second request is
// sent only once that body is closed, or gives up when its context ends.
func TestMaxConcurrencyHoldsSlotUntilBodyClosed(t *testing.T) {
	tests := []struct {
		name string
		// release ends the wait of the second request: by closing the first
		// body, or by canceling the second request's context.
		closeFirst bool
		wantKind   Kind // of the second request's error; ignored if closeFirst
		wantBlobs  int  // blob GETs sent in all
	}{
		{name: "first body closed", closeFirst: true, wantBlobs: 2},
		{name: "waiter canceled", wantKind: Canceled, wantBlobs: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mt := &memTransport{h: pingOK(func(w http.ResponseWriter, r *http.Request) {
					w.Write([]byte("blob bytes"))
				})}
				r := newTestRegistry(t, []string{"http://test.lan"}, func(o *Options) {
					o.MaxConcurrency = 1
					o.Transport = mt
				})
				first, _, err := r.GetBlob(context.Background(), "org/app", blobDigest, 0)
				if err != nil {
					t.Fatalf("first GetBlob: %v", err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				second := make(chan error, 1)
				go func() {
					body, _, err := r.GetBlob(ctx, "org/app", blobDigest, 0)
					if err == nil {
						body.Close()
					}
					second <- err
				}()
				synctest.Wait() // the second GetBlob is now blocked for good

				select {
				case err := <-second:
					t.Fatalf("second GetBlob returned (err %v) while the first body was open", err)
				default:
				}
				if n := mt.count("GET /v2/org/app/blobs/"); n != 1 {
					t.Errorf("blob GETs sent while the first body is open: %d, want 1", n)
				}
				if tc.closeFirst {
					first.Close()
					if err := <-second; err != nil {
						t.Errorf("second GetBlob after the first body closed: %v", err)
					}
				} else {
					cancel()
					err := <-second
					if got := KindOf(err); got != tc.wantKind {
						t.Errorf("second GetBlob: %v (kind %s), want %s", err, got, tc.wantKind)
					}
					first.Close()
				}
				if n := mt.count("GET /v2/org/app/blobs/"); n != tc.wantBlobs {
					t.Errorf("blob GETs sent in all: %d, want %d", n, tc.wantBlobs)
				}
			})
		})
	}
}

// TestRetriesAndFailover runs in a synctest bubble: backoffs and Retry-After
// waits pass in fake time, and how long a call took is exact.
func TestRetriesAndFailover(t *testing.T) {
	tests := []struct {
		name string
		// statuses are what each host answers the manifest GETs with, in
		// turn; the last repeats.
		statuses  map[string][]int
		endpoints []string
		// retryAfter is the Retry-After a 429 carries.
		retryAfter string
		wantKind   *Kind // nil: success
		wantReqs   map[string]int
		minTook    time.Duration
		maxTook    time.Duration
	}{
		{
			name:      "5xx retried until it succeeds",
			endpoints: []string{"http://a.lan"},
			statuses:  map[string][]int{"a.lan": {503, 502, 200}},
			wantReqs:  map[string]int{"a.lan": 3},
			// 200 ms then 400 ms, each ±50%.
			minTook: 300 * time.Millisecond, maxTook: 900 * time.Millisecond,
		},
		{
			name:      "5xx on every attempt",
			endpoints: []string{"http://a.lan"},
			statuses:  map[string][]int{"a.lan": {500}},
			wantKind:  ptr(Unavailable),
			wantReqs:  map[string]int{"a.lan": 3},
			minTook:   300 * time.Millisecond, maxTook: 900 * time.Millisecond,
		},
		{
			name:       "429 waited out for its Retry-After",
			endpoints:  []string{"http://a.lan"},
			statuses:   map[string][]int{"a.lan": {429, 200}},
			retryAfter: "3",
			wantReqs:   map[string]int{"a.lan": 2},
			minTook:    3 * time.Second, maxTook: 3 * time.Second,
		},
		{
			name:       "429 asking longer than MaxRetryAfter fails at once",
			endpoints:  []string{"http://a.lan"},
			statuses:   map[string][]int{"a.lan": {429, 200}},
			retryAfter: "3600",
			wantKind:   ptr(TooManyRequests),
			wantReqs:   map[string]int{"a.lan": 1},
		},
		{
			name:      "404 is final",
			endpoints: []string{"http://a.lan"},
			statuses:  map[string][]int{"a.lan": {404, 200}},
			wantKind:  ptr(NotFound),
			wantReqs:  map[string]int{"a.lan": 1},
		},
		{
			name:      "failover to the second endpoint",
			endpoints: []string{"http://a.lan", "http://b.lan"},
			statuses:  map[string][]int{"a.lan": {503}, "b.lan": {200}},
			wantReqs:  map[string]int{"a.lan": 3, "b.lan": 1},
			minTook:   300 * time.Millisecond, maxTook: 900 * time.Millisecond,
		},
		{
			name:      "no failover on a final answer",
			endpoints: []string{"http://a.lan", "http://b.lan"},
			statuses:  map[string][]int{"a.lan": {404}, "b.lan": {200}},
			wantKind:  ptr(NotFound),
			wantReqs:  map[string]int{"a.lan": 1, "b.lan": 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				served := map[string]int{}
				mt := &memTransport{h: pingOK(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					seq := tc.statuses[r.URL.Host]
					code := seq[min(served[r.URL.Host], len(seq)-1)]
					served[r.URL.Host]++
					mu.Unlock()
					if code == http.StatusTooManyRequests && tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.WriteHeader(code)
					if code != http.StatusOK {
						w.Write([]byte(`{"errors":[{"code":"X","message":"injected"}]}`))
						return
					}
					w.Write([]byte(`{"schemaVersion":2}`))
				})}
				r := newTestRegistry(t, tc.endpoints, func(o *Options) {
					o.Transport = mt
					o.Retry = &DefaultRetry
				})
				start := time.Now()
				_, err := r.GetManifest(context.Background(), "org/app", "v1", nil)
				took := time.Since(start)
				if tc.wantKind == nil && err != nil {
					t.Fatalf("GetManifest: %v", err)
				}
				if tc.wantKind != nil && KindOf(err) != *tc.wantKind {
					t.Fatalf("GetManifest: %v (kind %s), want %s", err, KindOf(err), *tc.wantKind)
				}
				for host, want := range tc.wantReqs {
					if got := mt.count(host + " GET /v2/org/app/manifests/"); got != want {
						t.Errorf("manifest GETs to %s: %d, want %d", host, got, want)
					}
				}
				if took < tc.minTook || took > tc.maxTook {
					t.Errorf("GetManifest took %s, want within [%s, %s]", took, tc.minTook, tc.maxTook)
				}
			})
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestFailedEndpointTriedLast: after the first endpoint fails, the next
// request goes to the second one first, during the cooldown.
func TestFailedEndpointTriedLast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mt := &memTransport{h: pingOK(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Host == "a.lan" {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"schemaVersion":2}`))
		})}
		r := newTestRegistry(t, []string{"http://a.lan", "http://b.lan"}, func(o *Options) { o.Transport = mt })
		for i := range 3 {
			if _, err := r.GetManifest(context.Background(), "org/app", "v1", nil); err != nil {
				t.Fatalf("GetManifest #%d: %v", i+1, err)
			}
		}
		if n := mt.count("a.lan GET /v2/org/app/manifests/"); n != 1 {
			t.Errorf("manifest GETs to the failed endpoint: %d, want 1 (then skipped during the cooldown)", n)
		}
		if n := mt.count("b.lan GET /v2/org/app/manifests/"); n != 3 {
			t.Errorf("manifest GETs to the healthy endpoint: %d, want 3", n)
		}
	})
}

func TestRefusePrivate(t *testing.T) {
	tests := []struct {
		address string
		refused bool
	}{
		{"127.0.0.1:443", true},
		{"127.1.2.3:5000", true},
		{"10.0.0.1:443", true},
		{"172.16.0.1:443", true},
		{"192.168.1.10:443", true},
		{"169.254.169.254:80", true}, // cloud metadata
		{"0.0.0.0:443", true},
		{"[::1]:443", true},
		{"[fd00::1]:443", true},
		{"[fe80::1]:443", true},
		{"[::]:443", true},
		{"[::ffff:127.0.0.1]:443", true},
		{"8.8.8.8:443", false},
		{"1.1.1.1:80", false},
		{"172.32.0.1:443", false}, // just outside 172.16/12
		{"[2001:4860::1]:443", false},
	}
	for _, tc := range tests {
		t.Run(tc.address, func(t *testing.T) {
			err := refusePrivate("tcp", tc.address, nil)
			if got := errors.Is(err, errPrivateAddress); got != tc.refused {
				t.Errorf("refusePrivate(%s) = %v, want refused=%v", tc.address, err, tc.refused)
			}
		})
	}
	if err := refusePrivate("tcp", "no-port", nil); err == nil {
		t.Error("refusePrivate accepted an address without a port")
	}
}

// TestPublicRegistryNeverDialsLoopback: a registry not on the LAN whose
// endpoint is on loopback is refused before any byte is sent.
func TestPublicRegistryNeverDialsLoopback(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	r := newTestRegistry(t, []string{srv.URL}, func(o *Options) { o.LAN = false })
	_, err := r.GetManifest(context.Background(), "org/app", "v1", nil)
	if !errors.Is(err, errPrivateAddress) {
		t.Errorf("GetManifest: %v, want the private-address refusal", err)
	}
	if got := KindOf(err); got != Denied {
		t.Errorf("KindOf = %s, want denied", got)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server received %d request(s), want 0", n)
	}
}

// TestAgainstRealRegistry pulls an image pushed to go-containerregistry's
// registry through every call of the client.
func TestAgainstRealRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/org/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	accept := []string{string(mt)}
	r := newTestRegistry(t, []string{srv.URL})
	ctx := t.Context()

	for _, ref := range []string{"v1", want.String()} {
		m, err := r.GetManifest(ctx, "org/app", ref, accept)
		if err != nil {
			t.Fatalf("GetManifest %s: %v", ref, err)
		}
		if m.Digest != want {
			t.Errorf("GetManifest %s: digest %s, want %s", ref, m.Digest, want)
		}
		if m.MediaType != string(mt) {
			t.Errorf("GetManifest %s: media type %q, want %q", ref, m.MediaType, mt)
		}
	}
	d, err := r.HeadManifest(ctx, "org/app", "v1", accept)
	if err != nil {
		t.Fatalf("HeadManifest: %v", err)
	}
	if d.Digest != want {
		t.Errorf("HeadManifest: digest %s, want %s", d.Digest, want)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		body, n, err := r.GetBlob(ctx, "org/app", h, 0)
		if err != nil {
			t.Fatalf("GetBlob %s: %v", h, err)
		}
		sum := sha256.New()
		_, err = io.Copy(sum, body)
		body.Close()
		if err != nil {
			t.Fatalf("reading blob %s: %v", h, err)
		}
		if got := "sha256:" + hex.EncodeToString(sum.Sum(nil)); got != h.String() {
			t.Errorf("GetBlob %s: bytes hash to %s", h, got)
		}
		if n != size {
			t.Errorf("GetBlob %s: size %d, want %d", h, n, size)
		}
		if hs, err := r.HeadBlob(ctx, "org/app", h); err != nil || hs != size {
			t.Errorf("HeadBlob %s = %d, %v; want %d", h, hs, err, size)
		}
	}
	tags, err := r.Tags(ctx, "org/app")
	if err != nil {
		t.Fatalf("Tags: %v", err)
	}
	if strings.Join(tags, ",") != "v1" {
		t.Errorf("Tags = %v, want [v1]", tags)
	}
	_, err = r.GetManifest(ctx, "org/missing", "v1", accept)
	if got := KindOf(err); got != NotFound {
		t.Errorf("GetManifest of a missing repository: %v (kind %s), want not_found", err, got)
	}
}

func TestSizeFromHeader(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1234", 1234},
		{strconv.FormatInt(1<<40, 10), 1 << 40},
		{"", -1},
		{"-5", -1},
		{"12a", -1},
	}
	for _, tc := range tests {
		if got := SizeFromHeader(tc.in); got != tc.want {
			t.Errorf("SizeFromHeader(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
