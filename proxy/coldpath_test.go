package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pullcache/pullcache/cache"
)

// gate holds an upstream blob response half-way until it is opened.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

type blobFault struct {
	cut     bool // abort the connection at the gate
	corrupt bool // send other bytes of the same length
}

// gatedBlob answers GET of blob d with its first half, waits for g, then
// sends the rest (or breaks, per fault).
func gatedBlob(d v1.Hash, data []byte, g *gate, fault blobFault) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()) {
			return false
		}
		body := data
		if fault.corrupt {
			body = bytes.Repeat([]byte{'!'}, len(data))
		}
		half := len(body) / 2
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		select {
		case <-g.ch:
		case <-r.Context().Done():
			return true
		}
		if fault.cut {
			panic(http.ErrAbortHandler)
		}
		w.Write(body[half:])
		return true
	}
}

type pull struct {
	headers chan struct{} // closed when response headers arrived
	body    []byte
	status  int
	err     error
	wait    chan struct{} // closed when the body was read
}

// startPull GETs path in the background.
func (e *env) startPull(ctx context.Context, path string, header ...string) *pull {
	p := &pull{headers: make(chan struct{})}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.mirror.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := e.client.Do(req)
		if err != nil {
			p.err = err
			close(p.headers)
			return
		}
		defer resp.Body.Close()
		p.status = resp.StatusCode
		close(p.headers)
		p.body, p.err = io.ReadAll(resp.Body)
	}()
	e.t.Cleanup(func() { <-done })
	p.wait = done
	return p
}

// gatedBlobEnv is a mirror before an upstream holding library/app:v1, an
// image of one layer whose GETs are held half-way at the gate, with fault.
type gatedBlobEnv struct {
	*env
	img  v1.Image
	d    v1.Hash
	want []byte
	gate *gate
	path string // the layer's path on the mirror
}

func newGatedBlobEnv(t *testing.T, layerSize int64, fault blobFault, opts ...envOption) *gatedBlobEnv {
	t.Helper()
	up := newFakeUpstream(t)
	img := randomImage(t, layerSize, 1)
	up.push("library/app:v1", img)
	d, want := layerBytes(t, img, 0)
	g := newGate(t)
	up.setFault(gatedBlob(d, want, g, fault))
	e := newEnv(t, up, append([]envOption{withPrefetch(false)}, opts...)...)
	return &gatedBlobEnv{env: e, img: img, d: d, want: want, gate: g, path: "/v2/library/app/blobs/" + d.String()}
}

func TestConcurrentColdPullsShareOneUpstreamFetch(t *testing.T) {
	checkLeaks(t)
	e := newGatedBlobEnv(t, 256<<10, blobFault{})
	e.up.push("library/fork:v1", e.img) // same blob, another repository
	d, want, up, g := e.d, e.want, e.up, e.gate

	const n = 8
	var pulls []*pull
	for i := range n {
		repo := "library/app"
		if i%4 == 3 {
			repo = "library/fork"
		}
		pulls = append(pulls, e.startPull(context.Background(), "/v2/"+repo+"/blobs/"+d.String()))
	}
	// Every client has its headers while the upstream is still half-way:
	// all of them are streaming from the one fill.
	for _, p := range pulls {
		<-p.headers
	}
	g.open()
	for i, p := range pulls {
		<-p.wait
		if p.err != nil || p.status != 200 || !bytes.Equal(p.body, want) {
			t.Errorf("client %d: status %d, %d bytes, err %v", i, p.status, len(p.body), p.err)
		}
	}
	if got := up.calls("GET blobs " + d.String()); got != 1 {
		t.Errorf("upstream GETs of the blob = %d, want 1", got)
	}
	// One started the fill; every other joined it while it ran.
	if got := testutil.ToFloat64(e.srv.metrics.fills); got != 1 {
		t.Errorf("pullcache_upstream_fills_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.srv.metrics.joins); got != n-1 {
		t.Errorf("pullcache_fill_joins_total = %v, want %d", got, n-1)
	}
}

func TestBrokenUpstreamAbortsEveryReaderAndCommitsNothing(t *testing.T) {
	for _, fault := range []blobFault{{cut: true}, {corrupt: true}} {
		t.Run(fmt.Sprintf("cut=%v corrupt=%v", fault.cut, fault.corrupt), func(t *testing.T) {
			checkLeaks(t)
			// A failed fill is not retried within its backoff; here the
			// backoff is over at once, so the next request fills anew.
			e := newGatedBlobEnv(t, 128<<10, fault, withFillRetryBackoff(time.Nanosecond))
			d, want, up, g, path := e.d, e.want, e.up, e.gate, e.path

			pulls := []*pull{e.startPull(context.Background(), path), e.startPull(context.Background(), path)}
			for _, p := range pulls {
				<-p.headers
			}
			g.open()
			for i, p := range pulls {
				<-p.wait
				if p.err == nil {
					t.Errorf("client %d got a complete-looking response of %d bytes", i, len(p.body))
				}
				if bytes.Equal(p.body, want) {
					t.Errorf("client %d received every byte of a failed fill", i)
				}
			}
			if e.store.HasBlob(d) {
				t.Fatal("a broken fill was committed")
			}
			up.setFault(nil)
			r := e.get(path)
			if r.status != 200 || !bytes.Equal(r.body, want) || r.header.Get("X-Pullcache") != "miss" {
				t.Errorf("after the failure: status %d, source %q", r.status, r.header.Get("X-Pullcache"))
			}
		})
	}
}

func TestClientHangUpDoesNotStopTheFill(t *testing.T) {
	checkLeaks(t)
	e := newGatedBlobEnv(t, 256<<10, blobFault{})
	want, up, g, path := e.want, e.up, e.gate, e.path

	ctx, cancel := context.WithCancel(context.Background())
	first := e.startPull(ctx, path)
	<-first.headers
	cancel()
	<-first.wait
	if !errors.Is(first.err, context.Canceled) {
		t.Fatalf("first client: %v", first.err)
	}
	g.open()
	r := e.get(path)
	if r.status != 200 || !bytes.Equal(r.body, want) {
		t.Fatalf("second client: status %d, %d bytes", r.status, len(r.body))
	}
	if got := up.calls("GET blobs"); got != 1 {
		t.Errorf("upstream GETs = %d, want 1: the fill restarted after the first client left", got)
	}
}

func TestRangeOnABlobBeingFilled(t *testing.T) {
	checkLeaks(t)
	e := newGatedBlobEnv(t, 128<<10, blobFault{})
	want, g, path := e.want, e.gate, e.path

	first := e.startPull(context.Background(), path)
	<-first.headers
	// The first bytes are there already; the tail arrives after the gate.
	early := e.get(path, "Range", "bytes=0-99")
	if early.status != http.StatusPartialContent || !bytes.Equal(early.body, want[:100]) {
		t.Fatalf("range in the arrived part: status %d", early.status)
	}
	past := e.get(path, "Range", fmt.Sprintf("bytes=%d-", len(want)))
	if past.status != http.StatusRequestedRangeNotSatisfiable || past.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(want)) {
		t.Errorf("range past the end of a blob being filled: status %d, Content-Range %q", past.status, past.header.Get("Content-Range"))
	}
	if c := errorCode(t, past); c != CodeRangeInvalid {
		t.Errorf("range past the end of a blob being filled: code %s", c)
	}
	tail := e.startPull(context.Background(), path, "Range", fmt.Sprintf("bytes=%d-", len(want)-100))
	<-tail.headers
	g.open()
	<-tail.wait
	if tail.status != http.StatusPartialContent || !bytes.Equal(tail.body, want[len(want)-100:]) {
		t.Errorf("range in the missing part: status %d, %d bytes, err %v", tail.status, len(tail.body), tail.err)
	}
}

func TestPrefetchFetchesLayersBeforeTheyAreAsked(t *testing.T) {
	checkLeaks(t)
	up := newFakeUpstream(t)
	img := randomImage(t, 32<<10, 3)
	up.push("library/app:v1", img)
	e := newEnv(t, up, withPrefetch(true))
	if r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll); r.status != 200 {
		t.Fatalf("manifest: %d", r.status)
	}
	e.srv.bg.Wait() // the prefetch of this manifest has finished
	if got := up.calls("GET blobs"); got != 4 {
		t.Fatalf("prefetched blobs = %d, want 4 (config and 3 layers)", got)
	}
	for i := range 3 {
		ld, want := layerBytes(t, img, i)
		r := e.get("/v2/library/app/blobs/" + ld.String())
		if !bytes.Equal(r.body, want) || r.header.Get("X-Pullcache") != "hit" {
			t.Errorf("layer %d: status %d, source %q", i, r.status, r.header.Get("X-Pullcache"))
		}
	}
	if got := up.calls("GET blobs"); got != 4 {
		t.Errorf("upstream blob GETs after the pull = %d, want still 4", got)
	}
}

func TestPrefetchPlatformsOfAnIndex(t *testing.T) {
	checkLeaks(t)
	up := newFakeUpstream(t)
	idx, imgs := twoPlatformIndex(t)
	up.pushIndex("library/multi:v1", idx)
	e := newEnv(t, up, withPrefetch(true), func(o *Options, _ *cache.Options) {
		o.PrefetchPlatforms = []v1.Platform{{OS: "linux", Architecture: "arm64"}}
	})
	if r := e.get("/v2/library/multi/manifests/v1", "Accept", acceptAll); r.status != 200 {
		t.Fatalf("index: %d", r.status)
	}
	e.srv.bg.Wait()
	arm, amd := imgs["arm64"], imgs["amd64"]
	if got := up.calls("GET manifests " + mustDigest(t, arm)); got != 1 {
		t.Errorf("arm64 child manifest GETs = %d, want 1", got)
	}
	if got := up.calls("GET manifests " + mustDigest(t, amd)); got != 0 {
		t.Errorf("amd64 child manifest fetched ahead: %d GETs", got)
	}
	for i := range 2 {
		d, _ := layerBytes(t, arm, i)
		if !e.store.HasBlob(d) {
			t.Errorf("arm64 layer %d not prefetched", i)
		}
		d, _ = layerBytes(t, amd, i)
		if e.store.HasBlob(d) {
			t.Errorf("amd64 layer %d prefetched", i)
		}
	}
}

func TestFillResumesABrokenUpstreamTransfer(t *testing.T) {
	checkLeaks(t)
	up := newFakeUpstream(t)
	img := randomImage(t, 256<<10, 1)
	up.push("library/app:v1", img)
	d, want := layerBytes(t, img, 0)
	g := newGate(t)
	g.open()
	cut := gatedBlob(d, want, g, blobFault{cut: true})
	var ranges []string
	up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/blobs/") {
			return false
		}
		ranges = append(ranges, r.Header.Get("Range"))
		if len(ranges) == 1 {
			return cut(w, r)
		}
		return false
	})
	e := newEnv(t, up, withPrefetch(false))
	r := e.get("/v2/library/app/blobs/" + d.String())
	if r.status != 200 || !bytes.Equal(r.body, want) {
		t.Fatalf("status %d, %d bytes, err %v", r.status, len(r.body), r.err)
	}
	// The in-memory upstream refuses open-ended ranges with 416, so the
	// resume falls back to a whole GET whose first half is skipped.
	wantRanges := []string{"", fmt.Sprintf("bytes=%d-", len(want)/2), ""}
	if fmt.Sprint(ranges) != fmt.Sprint(wantRanges) {
		t.Errorf("upstream blob GETs with Range headers %q, want %q", ranges, wantRanges)
	}
}

func TestHeadOfABlobBeingFilledAsksNoUpstream(t *testing.T) {
	checkLeaks(t)
	e := newGatedBlobEnv(t, 128<<10, blobFault{})
	first := e.startPull(context.Background(), e.path)
	<-first.headers // the fill is half-way, held at the gate
	head := e.do(http.MethodHead, e.path)
	if head.status != http.StatusOK || head.header.Get("Content-Length") != strconv.Itoa(len(e.want)) {
		t.Errorf("HEAD during the fill: status %d, Content-Length %q, want %d", head.status, head.header.Get("Content-Length"), len(e.want))
	}
	if got := head.header.Get("Docker-Content-Digest"); got != e.d.String() {
		t.Errorf("HEAD during the fill: Docker-Content-Digest %q", got)
	}
	if n := e.up.calls("HEAD blobs"); n != 0 {
		t.Errorf("HEAD during the fill asked the upstream %d times", n)
	}
	e.gate.open()
	<-first.wait
}

func withFillRetryBackoff(d time.Duration) envOption {
	return func(_ *Options, co *cache.Options) { co.FillRetryBackoff = d }
}

// TestFailedFillIsSharedNotMultiplied: six clients on a fill that breaks
// all see a broken transfer; their retries within the backoff get the
// failure (502 or 503 with Retry-After, never 500) without a new upstream
// transfer. The upstream sees the fill's GETs only: 1 and its resumes.
func TestFailedFillIsSharedNotMultiplied(t *testing.T) {
	for _, fault := range []blobFault{{cut: true}, {corrupt: true}} {
		t.Run(fmt.Sprintf("cut=%v corrupt=%v", fault.cut, fault.corrupt), func(t *testing.T) {
			checkLeaks(t)
			e := newGatedBlobEnv(t, 128<<10, fault, withFillRetryBackoff(time.Hour))
			var pulls []*pull
			for range 6 {
				pulls = append(pulls, e.startPull(context.Background(), e.path))
			}
			for _, p := range pulls {
				<-p.headers
			}
			e.gate.open()
			for i, p := range pulls {
				<-p.wait
				if p.err == nil {
					t.Errorf("client %d got a complete-looking response of %d bytes", i, len(p.body))
				}
			}
			gets := e.up.calls("GET blobs")
			t.Logf("upstream GETs: %d", gets)
			const maxResumes = 3
			if gets > 1+maxResumes {
				t.Errorf("one broken fill cost %d upstream GETs, want at most %d", gets, 1+maxResumes)
			}
			for i := range 6 {
				r := e.get(e.path)
				if r.status != http.StatusBadGateway && r.status != http.StatusServiceUnavailable {
					t.Fatalf("retry %d: status %d, want 502 or 503: %s", i, r.status, r.body)
				}
				if c := errorCode(t, r); c != CodeUnavailable {
					t.Errorf("retry %d: code %s", i, c)
				}
				if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
					t.Errorf("retry %d: Retry-After %q, want the rest of the hour's backoff", i, r.header.Get("Retry-After"))
				}
			}
			if n := e.up.calls("GET blobs"); n != gets {
				t.Errorf("retries within the backoff cost %d more upstream GETs", n-gets)
			}
		})
	}
}
