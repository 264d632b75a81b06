package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// upstream is an in-process registry (go-containerregistry's registry.New) on
// 127.0.0.1 that counts what it is asked for, so tests can assert how many
// requests pullcache sent upstream.
type upstream struct {
	srv  *httptest.Server
	host string // 127.0.0.1:PORT

	mu       sync.Mutex
	counts   map[string]int // "GET blob", "HEAD manifest", ...
	blobGETs map[string]int // blob digest -> number of GETs
	requests []string       // "GET /v2/...", in arrival order, for failure logs

	// throttle, when set, slows blob GET responses down (see slowWriter) so
	// that concurrent requests overlap an upstream fetch.
	throttle *throttle

	stopOnce sync.Once
}

// throttle paces a response: at most chunk bytes per tick.
type throttle struct {
	chunk int
	tick  time.Duration
}

// slowWriter writes through to the client a chunk per tick, as a distant
// upstream would; each chunk is flushed so the client sees bytes arrive.
type slowWriter struct {
	http.ResponseWriter
	th     *throttle
	ticker *time.Ticker
}

func (w *slowWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if w.ticker == nil {
			w.ticker = time.NewTicker(w.th.tick)
		} else {
			<-w.ticker.C
		}
		n := min(len(p), w.th.chunk)
		m, err := w.ResponseWriter.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[n:]
	}
	return written, nil
}

func (w *slowWriter) stop() {
	if w.ticker != nil {
		w.ticker.Stop()
	}
}

// Request kinds, by path.
const (
	kindManifest = "manifest"
	kindBlob     = "blob"
	kindUpload   = "upload"
	kindOther    = "other"
)

func newUpstream(t *testing.T, opts ...registry.Option) *upstream {
	t.Helper()
	u := &upstream{counts: map[string]int{}, blobGETs: map[string]int{}}
	reg := registry.New(append([]registry.Option{registry.Logger(log.New(io.Discard, "", 0))}, opts...)...)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if kind, th := u.record(r); kind == kindBlob && r.Method == http.MethodGet && th != nil {
			sw := &slowWriter{ResponseWriter: w, th: th}
			defer sw.stop()
			w = sw
		}
		reg.ServeHTTP(w, r)
	}))
	u.host = strings.TrimPrefix(u.srv.URL, "http://")
	t.Cleanup(u.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("upstream %s received:\n%s", u.host, strings.Join(u.requestLog(), "\n"))
		}
	})
	return u
}

// url is the upstream's base URL, as given to pullcache's --upstream.
func (u *upstream) url() string { return u.srv.URL }

// stop closes the upstream: afterwards connections to it are refused.
func (u *upstream) stop() {
	u.stopOnce.Do(func() {
		// Keep-alive connections from pullcache would otherwise hold Close.
		u.srv.CloseClientConnections()
		u.srv.Close()
	})
}

// classify names the kind of registry request a path is.
func classify(path string) (kind, digest string) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return kindOther, ""
	}
	if strings.Contains(rest, "/blobs/uploads/") || strings.HasSuffix(rest, "/blobs/uploads") {
		return kindUpload, ""
	}
	if i := strings.LastIndex(rest, "/blobs/"); i >= 0 {
		return kindBlob, rest[i+len("/blobs/"):]
	}
	if strings.Contains(rest, "/manifests/") {
		return kindManifest, ""
	}
	return kindOther, ""
}

// record counts r and returns its kind and the throttle in force.
func (u *upstream) record(r *http.Request) (string, *throttle) {
	kind, digest := classify(r.URL.Path)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.counts[r.Method+" "+kind]++
	if kind == kindBlob && r.Method == http.MethodGet {
		u.blobGETs[digest]++
	}
	line := r.Method + " " + r.URL.RequestURI()
	if rg := r.Header.Get("Range"); rg != "" {
		line += " Range: " + rg
	}
	u.requests = append(u.requests, line)
	return kind, u.throttle
}

// setThrottle paces the blob GET responses that follow.
func (u *upstream) setThrottle(th *throttle) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.throttle = th
}

// count reports how many requests of method and kind arrived so far.
func (u *upstream) count(method, kind string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[method+" "+kind]
}

// blobGETsByDigest returns a copy of the per-digest blob GET counts.
func (u *upstream) blobGETsByDigest() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := make(map[string]int, len(u.blobGETs))
	for k, v := range u.blobGETs {
		m[k] = v
	}
	return m
}

func (u *upstream) requestLog() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.requests...)
}

// reset forgets all counts, so pushes made while setting up are not counted.
// requestsSince returns the requests that arrived after the first n, and
// how many arrived in all (the n of a later call).
func (u *upstream) requestsSince(n int) ([]string, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.requests[min(n, len(u.requests)):]), len(u.requests)
}

func (u *upstream) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.counts = map[string]int{}
	u.blobGETs = map[string]int{}
	u.requests = nil
}

// push writes every image of fx to the upstream, then resets the counters.
func (u *upstream) push(t *testing.T, images ...*testImage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, im := range images {
		u.write(ctx, t, im.ref(), im.image, im.index)
	}
	u.reset()
}

// write pushes an image, or an index when index is set, as repoTag
// ("library/x:v1").
func (u *upstream) write(ctx context.Context, t *testing.T, repoTag string, image v1.Image, index v1.ImageIndex) {
	t.Helper()
	ref, err := name.ParseReference(u.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if index != nil {
		err = remote.WriteIndex(ref, index, remote.WithContext(ctx))
	} else {
		err = remote.Write(ref, image, remote.WithContext(ctx))
	}
	if err != nil {
		t.Fatalf("pushing %s to the upstream: %v", ref, err)
	}
}

// requireEachBlobFetchedAtMostOnce fails t if pullcache GOT any blob from the
// upstream more than once.
func (u *upstream) requireEachBlobFetchedAtMostOnce(t *testing.T) {
	t.Helper()
	for digest, n := range u.blobGETsByDigest() {
		if n > 1 {
			t.Errorf("upstream: blob %s was fetched %d times, want at most once", digest, n)
		}
	}
}

// formatCounts renders per-digest counts for messages.
func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %d\n", k, m[k])
	}
	return b.String()
}

// digestOf is v1.Hash's String, failing t on error.
func digestOf(t *testing.T, f func() (v1.Hash, error)) string {
	t.Helper()
	h, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}
