package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// faultFront is a reverse proxy in front of a registry (an upstream, or
// pullcache itself) that records the status of every answer and, for the
// requests a fault matches, answers in the registry's place.
type faultFront struct {
	srv  *httptest.Server
	host string

	stopOnce func()

	mu     sync.Mutex
	faults []fault
	seen   []frontRecord
}

// fault is an answer a faultFront gives instead of the registry.
type fault struct {
	kind   string // kindManifest or kindBlob
	digest string // for kindBlob, only this blob ("" for any)
	status int
	header map[string]string
}

func (f fault) matches(r *http.Request) bool {
	kind, digest := classify(r.URL.Path)
	return kind == f.kind && (f.digest == "" || f.digest == digest)
}

// frontRecord is one request a faultFront answered.
type frontRecord struct {
	method, path string
	status       int
}

func newFaultFront(t *testing.T, target string) *faultFront {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultFront{}
	f.stopOnce = sync.OnceFunc(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	proxy := httputil.NewSingleHostReverseProxy(u)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if flt, ok := f.faultFor(r); ok {
			writeFault(rec, r, flt)
		} else {
			proxy.ServeHTTP(rec, r)
		}
		f.mu.Lock()
		f.seen = append(f.seen, frontRecord{r.Method, r.URL.Path, rec.status})
		f.mu.Unlock()
	}))
	f.host = strings.TrimPrefix(f.srv.URL, "http://")
	t.Cleanup(f.stop)
	return f
}

func (f *faultFront) faultFor(r *http.Request) (fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, flt := range f.faults {
		if flt.matches(r) {
			return flt, true
		}
	}
	return fault{}, false
}

// writeFault answers as a registry failing with flt.status would.
func writeFault(w http.ResponseWriter, r *http.Request, flt fault) {
	for k, v := range flt.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(flt.status)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected by the test"}]}`, ociCodeFor(flt.status))
	}
}

func ociCodeFor(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusForbidden:
		return "DENIED"
	case http.StatusNotFound:
		return "BLOB_UNKNOWN"
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	default:
		return "UNAVAILABLE"
	}
}

// set replaces the faults in force.
func (f *faultFront) set(faults ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = faults
}

// records returns what was answered so far.
func (f *faultFront) records() []frontRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// stop closes the front: connections to it are refused from now on.
func (f *faultFront) stop() { f.stopOnce() }

func (f *faultFront) url() string { return f.srv.URL }

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// hubHost is where a daemon falling back from its mirror goes: Docker
// Hub's registry (through the test daemon's refusing proxy).
const hubHost = "registry-1.docker.io:443"

// TestDockerMirrorFallback records what the Docker daemon does for each way
// the mirror can fail: pullcache stopped, and each error status pullcache
// answers (404 for an unknown tag, 403 and 429 passed on from the upstream,
// 503 with the upstream unreachable and nothing cached), plus statuses a
// failing server answers (500, 401) and a failing layer. In every case the
// daemon falls back to Docker Hub, which these machines cannot reach: the
// pull fails with Docker Hub's error, never the mirror's. The README's
// table comes from this test.
func TestDockerMirrorFallback(t *testing.T) {
	ctx := context.Background()
	requireDocker(t)
	imgs := loadDockerImages(t)
	hub := newUpstream(t)
	tags := []string{"v1", "cold", "denied", "ratelimited"}
	for _, tag := range tags {
		r := *imgs.v1
		r.ref = "library/dockerhello:" + tag
		pushRunnable(t, hub, &r)
	}
	upFront := newFaultFront(t, hub.url())
	srv := startPullcache(t, t.TempDir(), map[string]string{"docker.io": upFront.url()})
	mirror := newFaultFront(t, "http://"+srv.addr)
	// One download retry, not the default five: a failing layer then costs
	// one 5 s back-off before the daemon gives up on the mirror, instead of
	// 5+10+15+20+25 s.
	d := startDockerd(ctx, t, dockerdOptions{Mirrors: []string{mirror.url()}, MaxDownloadAttempts: 1})

	// The fronts pass a healthy pull through.
	d.pullAndRun(ctx, t, "dockerhello:v1", imgs.v1)
	d.removeAllImages(ctx, t)
	layer := blobsOf(t, imgs.v1.image)[1]

	cases := []struct {
		name  string
		image string
		setup func()
		// want is the status of the mirror's first answer to a manifest
		// request; 0 when the mirror does not answer at all.
		want int
		// blobStatus, when set, is the status a blob request got.
		blobStatus int
	}{
		{name: "tag unknown upstream", image: "dockerhello:nosuchtag", want: http.StatusNotFound},
		{name: "upstream denies", image: "dockerhello:denied", want: http.StatusForbidden, setup: func() {
			upFront.set(fault{kind: kindManifest, status: http.StatusForbidden})
		}},
		{name: "upstream rate-limits for an hour", image: "dockerhello:ratelimited", want: http.StatusTooManyRequests, setup: func() {
			upFront.set(fault{kind: kindManifest, status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "3600"}})
		}},
		{name: "mirror fails with 500", image: "dockerhello:v1", want: http.StatusInternalServerError, setup: func() {
			mirror.set(fault{kind: kindManifest, status: http.StatusInternalServerError})
		}},
		{name: "mirror wants a login", image: "dockerhello:v1", want: http.StatusUnauthorized, setup: func() {
			mirror.set(fault{kind: kindManifest, status: http.StatusUnauthorized, header: map[string]string{"WWW-Authenticate": `Basic realm="mirror"`}})
		}},
		{name: "layer missing", image: "dockerhello:v1", want: http.StatusOK, blobStatus: http.StatusNotFound, setup: func() {
			mirror.set(fault{kind: kindBlob, digest: layer, status: http.StatusNotFound})
		}},
		{name: "layer unavailable", image: "dockerhello:v1", want: http.StatusOK, blobStatus: http.StatusServiceUnavailable, setup: func() {
			mirror.set(fault{kind: kindBlob, digest: layer, status: http.StatusServiceUnavailable})
		}},
		{name: "upstream unreachable, not cached", image: "dockerhello:cold", want: http.StatusServiceUnavailable, setup: upFront.stop},
		{name: "pullcache stopped", image: "dockerhello:v1", want: 0, setup: func() {
			srv.stop()
			mirror.stop() // the front stands for pullcache: nothing listens any more
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			upFront.set()
			mirror.set()
			if tc.setup != nil {
				tc.setup()
			}
			seen, tried, logged := len(mirror.records()), len(d.hubAttempts()), len(d.logs.String())
			_, combined, err := d.dockerErr(ctx, t, "pull", tc.image)
			if err == nil {
				t.Fatalf("docker pull %s succeeded; Docker Hub is unreachable here, so it must fail", tc.image)
			}
			if got := d.hubAttempts()[tried:]; !slices.Contains(got, hubHost) {
				t.Errorf("the daemon did not fall back to Docker Hub (went to %v, want %s)", got, hubHost)
			}
			if !strings.Contains(combined, "registry-1.docker.io") {
				t.Errorf("the pull's error is not Docker Hub's:\n%s", combined)
			}
			if log := d.logs.String()[logged:]; !strings.Contains(log, "Attempting next endpoint for pull after error") {
				t.Errorf("the daemon's log does not show the fallback:\n%s", log)
			}
			got := mirror.records()[seen:]
			checkFirstStatus(t, got, "manifest", func(p string) bool { k, _ := classify(p); return k == kindManifest }, tc.want)
			if tc.blobStatus != 0 {
				checkFirstStatus(t, got, "layer", func(p string) bool { return strings.HasSuffix(p, "/blobs/"+layer) }, tc.blobStatus)
			}
			t.Logf("mirror answered: %v; daemon said: %s", got, strings.TrimSpace(combined))
		})
	}
}

// checkFirstStatus checks the status of the first of recs whose path
// matches (a request for what); want 0 means none reached the mirror.
func checkFirstStatus(t *testing.T, recs []frontRecord, what string, match func(path string) bool, want int) {
	t.Helper()
	for _, r := range recs {
		if match(r.path) {
			if r.status != want {
				t.Errorf("the mirror answered %s %s with %d, want %d", r.method, r.path, r.status, want)
			}
			return
		}
	}
	if want != 0 {
		t.Errorf("no %s request reached the mirror; want one answered %d (saw %v)", what, want, recs)
	}
}
