package proxy

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// refusingUpstream is an in-memory upstream registry (no sockets, so it
// runs in a synctest bubble) whose connections are refused while down is
// set. It counts every request that reached for it, by kind.
type refusingUpstream struct {
	h    http.Handler
	down atomic.Bool

	mu     sync.Mutex
	counts map[string]int // "probe", "ping" (a client's GET /v2/), "manifest", "blob", "other"
}

func newRefusingUpstream() *refusingUpstream {
	return &refusingUpstream{h: registry.New(registry.Logger(log.New(io.Discard, "", 0))), counts: map[string]int{}}
}

func (u *refusingUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Test-Setup") == "" {
		u.mu.Lock()
		u.counts[requestKind(req)]++
		u.mu.Unlock()
	}
	if u.down.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	if req.Body == nil {
		req.Body = http.NoBody // as a server sees it
	}
	rec := httptest.NewRecorder()
	u.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

func requestKind(req *http.Request) string {
	switch path := req.URL.Path; {
	case req.Header.Get("User-Agent") == upstream.ProbeUserAgent:
		return "probe"
	case path == "/v2/":
		return "ping"
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	}
	return "other"
}

// take returns the counts so far and starts again from zero.
func (u *refusingUpstream) take() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.counts
	u.counts = map[string]int{}
	return c
}

func total(counts map[string]int) int {
	n := 0
	for _, v := range counts {
		n += v
	}
	return n
}

// TestOutageOfTenMinutes runs a 10-minute upstream outage (connections
// refused) on a simulated clock: 200 clients, as Docker does, ask for a
// cold manifest by tag and its cold layer every second. During the
// outage the upstream sees the probes (one per interval) and one request
// per remembered failure per negative_ttl at most; once it answers again,
// every client has the right bytes within 3 s.
func TestOutageOfTenMinutes(t *testing.T) {
	const (
		outage      = 10 * time.Minute
		negativeTTL = 30 * time.Second
	)
	clients := 200
	if raceDetector {
		clients = 20 // the same outage, a tenth of the herd: the figures come from the run without it
	}
	synctest.Test(t, func(t *testing.T) {
		up := newRefusingUpstream()
		img := randomImage(t, 4096, 1)
		ref, err := name.ParseReference("up.lan/library/app:v1", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithTransport(setupTransport{up})); err != nil {
			t.Fatal(err)
		}
		manifest, _ := img.RawManifest()
		layers, _ := img.Layers()
		layerDigest, _ := layers[0].Digest()
		layer := readAll(t, layers[0].Compressed)

		store, err := cache.Open(cache.Options{Dir: t.TempDir(), Housekeeping: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		reg, err := upstream.New(upstream.Options{Name: "docker.io", Endpoints: []string{"http://up.lan"}, Transport: up, LAN: true})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Options{Store: store, Registries: map[string]Upstream{"docker.io": reg},
			TagTTL: 5 * time.Minute, NegativeTTL: negativeTTL, Prefetch: true})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()

		up.down.Store(true)
		back := time.Now().Add(outage)
		recovered := make([]time.Duration, clients)
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * time.Second / time.Duration(clients)) // spread over the second
				recovered[i] = retryEverySecond(srv, manifest, layer, "/v2/library/app/manifests/v1",
					"/v2/library/app/blobs/"+layerDigest.String(), back)
			})
		}
		time.Sleep(outage)
		during := up.take()
		up.down.Store(false)
		wg.Wait()
		after := up.take()

		sort.Slice(recovered, func(i, j int) bool { return recovered[i] < recovered[j] })
		t.Logf("%s outage, %d clients retrying every second: %d upstream requests during it %v; after it %v; "+
			"clients had the right bytes %s (median) and %s (last) after the upstream answered again",
			outage, clients, total(during), during, after, recovered[clients/2], recovered[clients-1])
		if last := recovered[clients-1]; last < 0 || last > 3*time.Second {
			t.Errorf("the last client had the right bytes %s after the upstream answered again, want within 3s", last)
		}
		if most := int(outage/upstream.DefaultProbeInterval) + 1; during["probe"] > most {
			t.Errorf("%d probes during the outage, want one per %s at most (%d)", during["probe"], upstream.DefaultProbeInterval, most)
		}
		// Two remembered failures (the tag, the layer), each asked again
		// once per negative_ttl at most, with the client's retries, each
		// of which pings (https, then http) before its request.
		most := 2 * int(outage/negativeTTL+1) * upstream.DefaultRetry.Attempts * 3
		if n := total(during) - during["probe"]; n > most {
			t.Errorf("%d requests for remembered failures reached the upstream during the outage, want at most %d", n, most)
		}
		if after["manifest"] != 1 {
			t.Errorf("manifest GETs after the outage: %d, want 1", after["manifest"])
		}
		if after["blob"] != 2 {
			t.Errorf("blob GETs after the outage: %d, want 2 (the layer and, prefetched, the config)", after["blob"])
		}
	})
}

// retryEverySecond asks for a manifest and a blob every second until both
// come back right, and returns how long after back that was; -1 if they
// did not within a minute of it, or did before it.
func retryEverySecond(h http.Handler, manifest, blob []byte, manifestPath, blobPath string, back time.Time) time.Duration {
	for time.Since(back) < time.Minute {
		m := serveOnce(h, manifestPath)
		b := serveOnce(h, blobPath)
		if bytes.Equal(m, manifest) && bytes.Equal(b, blob) {
			if time.Now().Before(back) {
				return -1
			}
			return time.Since(back)
		}
		time.Sleep(time.Second)
	}
	return -1
}

// serveOnce is a GET through h; the body of a 200, nil otherwise.
func serveOnce(h http.Handler, path string) []byte {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Accept", acceptAll)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil
	}
	return rec.Body.Bytes()
}

func readAll(t *testing.T, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(fmt.Errorf("read: %w", err))
	}
	return b
}
