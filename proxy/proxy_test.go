package proxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/cache"
)

func TestBase(t *testing.T) {
	e := newEnv(t, newFakeUpstream(t))
	r := e.get("/v2/")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if got := r.header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
		t.Errorf("Docker-Distribution-API-Version = %q", got)
	}
}

func TestManifestByTagColdThenWarm(t *testing.T) {
	up := newFakeUpstream(t)
	img := randomImage(t, 512, 2)
	d := up.push("library/app:v1", img)
	e := newEnv(t, up, withPrefetch(false))

	for i, wantSource := range []string{"miss", "hit"} {
		r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
		if r.status != http.StatusOK {
			t.Fatalf("pull %d: status %d: %s", i, r.status, r.body)
		}
		if !bytes.Equal(r.body, rawManifest(t, img)) {
			t.Errorf("pull %d: body differs from the upstream's bytes", i)
		}
		if got := r.header.Get("Docker-Content-Digest"); got != d.String() {
			t.Errorf("pull %d: Docker-Content-Digest = %q, want %s", i, got, d)
		}
		if got := r.header.Get("Content-Type"); got != "application/vnd.docker.distribution.manifest.v2+json" {
			t.Errorf("pull %d: Content-Type = %q", i, got)
		}
		if got := r.header.Get("X-Pullcache"); got != wantSource {
			t.Errorf("pull %d: X-Pullcache = %q, want %q", i, got, wantSource)
		}
	}
	if n := up.calls("GET manifests"); n != 1 {
		t.Errorf("upstream manifest GETs = %d, want 1", n)
	}
}

func TestOneComponentNameMeansLibrary(t *testing.T) {
	up := newFakeUpstream(t)
	d := up.push("library/alpine:3", randomImage(t, 256, 1))
	e := newEnv(t, up, withPrefetch(false))
	r := e.get("/v2/alpine/manifests/3", "Accept", acceptAll)
	if got := r.header.Get("Docker-Content-Digest"); got != d.String() {
		t.Fatalf("status %d, digest %q, want %s", r.status, got, d)
	}
}

func TestManifestHeadAndByDigest(t *testing.T) {
	up := newFakeUpstream(t)
	img := ociImage(t)
	d := up.push("library/oci:v1", img)
	e := newEnv(t, up, withPrefetch(false))

	head := e.do(http.MethodHead, "/v2/library/oci/manifests/v1?ns=docker.io", "Accept", acceptAll)
	if head.status != http.StatusOK || len(head.body) != 0 {
		t.Fatalf("HEAD: status %d, %d body bytes", head.status, len(head.body))
	}
	if got := head.header.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("HEAD digest = %q, want %s", got, d)
	}
	if got := head.header.Get("Content-Length"); got != fmt.Sprint(len(rawManifest(t, img))) {
		t.Errorf("HEAD Content-Length = %q", got)
	}
	if got := head.header.Get("OCI-Namespace"); got != "docker.io" {
		t.Errorf("OCI-Namespace = %q, want docker.io", got)
	}
	r := e.get("/v2/library/oci/manifests/"+d.String(), "Accept", acceptAll)
	if !bytes.Equal(r.body, rawManifest(t, img)) {
		t.Fatalf("by digest: status %d, body differs", r.status)
	}
	if got := r.header.Get("Content-Type"); got != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("Content-Type = %q", got)
	}
	if n := up.calls("GET manifests"); n != 1 {
		t.Errorf("upstream manifest GETs = %d, want 1 (the by-digest GET is cached by the tag fetch)", n)
	}
}

func mustDigest(t *testing.T, x interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestBlobColdWarmAndRange(t *testing.T) {
	up := newFakeUpstream(t)
	img := randomImage(t, 64<<10, 1)
	up.push("library/app:v1", img)
	d, want := layerBytes(t, img, 0)
	e := newEnv(t, up, withPrefetch(false))
	path := "/v2/library/app/blobs/" + d.String()

	for i, src := range []string{"miss", "hit"} {
		r := e.get(path)
		if r.status != http.StatusOK || !bytes.Equal(r.body, want) {
			t.Fatalf("GET %d: status %d, %d bytes, want %d", i, r.status, len(r.body), len(want))
		}
		if got := r.header.Get("X-Pullcache"); got != src {
			t.Errorf("GET %d: X-Pullcache %q, want %q", i, got, src)
		}
		if got := r.header.Get("Docker-Content-Digest"); got != d.String() {
			t.Errorf("GET %d: digest header %q", i, got)
		}
	}
	if n := up.calls("GET blobs"); n != 1 {
		t.Errorf("upstream blob GETs = %d, want 1", n)
	}
	r := e.get(path, "Range", "bytes=10-19")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, want[10:20]) {
		t.Fatalf("Range: status %d body %q", r.status, r.body)
	}
	if got := r.header.Get("Content-Range"); got != fmt.Sprintf("bytes 10-19/%d", len(want)) {
		t.Errorf("Content-Range = %q", got)
	}
	// The descriptor that served the range is lent again: a whole GET
	// still starts at the first byte.
	if r := e.get(path); r.status != http.StatusOK || !bytes.Equal(r.body, want) {
		t.Fatalf("GET after a range: status %d, %d bytes", r.status, len(r.body))
	}
	r = e.get(path, "Range", fmt.Sprintf("bytes=%d-", len(want)+10))
	if r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range: status %d", r.status)
	}
	if got := r.header.Get("Content-Range"); got != fmt.Sprintf("bytes */%d", len(want)) {
		t.Errorf("unsatisfiable range: Content-Range %q", got)
	}
	if c := errorCode(t, r); c != CodeRangeInvalid {
		t.Errorf("unsatisfiable range: code %s", c)
	}
	head := e.do(http.MethodHead, path)
	if head.header.Get("Content-Length") != fmt.Sprint(len(want)) || head.status != 200 {
		t.Errorf("HEAD: status %d, Content-Length %q", head.status, head.header.Get("Content-Length"))
	}
}

func TestBadRequests(t *testing.T) {
	up := newFakeUpstream(t)
	up.push("library/app:v1", randomImage(t, 256, 1))
	e := newEnv(t, up, withPrefetch(false))
	missing := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"upper-case name", "GET", "/v2/Library/App/manifests/v1", 400, CodeNameInvalid},
		{"name with ..", "GET", "/v2/library/../x/manifests/v1", 400, CodeNameInvalid},
		{"bad blob digest", "GET", "/v2/library/app/blobs/sha256:xyz", 404, CodeBlobUnknown},
		{"unknown blob digest algorithm", "GET", "/v2/library/app/blobs/md5:abcd", 404, CodeBlobUnknown},
		{"blob reference not a digest", "HEAD", "/v2/library/app/blobs/latest", 404, CodeBlobUnknown},
		{"bad manifest digest", "GET", "/v2/library/app/manifests/sha256:xyz", 404, CodeManifestUnknown},
		{"upper-case manifest digest", "GET", "/v2/library/app/manifests/sha256:" + strings.Repeat("A", 64), 404, CodeManifestUnknown},
		{"unknown manifest digest algorithm", "GET", "/v2/library/app/manifests/md5:abcd", 404, CodeManifestUnknown},
		{"bad tag", "GET", "/v2/library/app/manifests/-bad", 404, CodeManifestUnknown},
		{"tag of the conformance suite", "GET", "/v2/library/app/manifests/.INVALID_MANIFEST_NAME", 404, CodeManifestUnknown},
		{"tag of 129 characters", "HEAD", "/v2/library/app/manifests/" + strings.Repeat("t", 129), 404, CodeManifestUnknown},
		{"bad name before a bad tag", "GET", "/v2/Library/app/manifests/-bad", 400, CodeNameInvalid},
		{"name of 256 characters", "GET", "/v2/" + strings.Repeat("a", 256) + "/manifests/v1", 400, CodeNameInvalid},
		{"referrers of a malformed digest", "GET", "/v2/library/app/referrers/sha256:xyz", 400, CodeDigestInvalid},
		{"unknown tag", "GET", "/v2/library/app/manifests/nope", 404, CodeManifestUnknown},
		{"unknown manifest digest", "GET", "/v2/library/app/manifests/" + missing, 404, CodeManifestUnknown},
		{"unknown blob", "GET", "/v2/library/app/blobs/" + missing, 404, CodeBlobUnknown},
		{"unknown repository tags", "GET", "/v2/library/nope/tags/list", 404, CodeNameUnknown},
		{"push a manifest", "PUT", "/v2/library/app/manifests/v1", 405, CodeUnsupported},
		{"start an upload", "POST", "/v2/library/app/blobs/uploads/", 405, CodeUnsupported},
		{"GET an upload", "GET", "/v2/library/app/blobs/uploads/abc", 405, CodeUnsupported},
		{"delete", "DELETE", "/v2/library/app/manifests/v1", 405, CodeUnsupported},
		{"no route", "GET", "/v2/library/app/unknown", 404, CodeUnsupported},
		{"not the API", "GET", "/other", 404, CodeUnsupported},
		{"bad n", "GET", "/v2/library/app/tags/list?n=-1", 400, CodePaginationInvalid},
		{"unconfigured registry by ns", "GET", "/v2/library/app/manifests/v1?ns=evil.example.com", 404, CodeNameUnknown},
		{"unconfigured registry by prefix", "GET", "/v2/evil.example.com/library/app/manifests/v1", 404, CodeNameUnknown},
		{"bad ns", "GET", "/v2/library/app/manifests/v1?ns=a/b", 400, CodeNameInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.method != http.MethodHead {
				if c := errorCode(t, r); c != tc.code {
					t.Errorf("code %s, want %s", c, tc.code)
				}
			}
			if got := r.header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
				t.Errorf("Docker-Distribution-API-Version = %q", got)
			}
			if got := r.header.Get("Cache-Control"); got != "" {
				t.Errorf("an error is cacheable: Cache-Control %q", got)
			}
		})
	}
	if n := up.calls("GET manifests v1"); n != 0 {
		t.Errorf("refused requests reached the upstream %d times", n)
	}
}

func TestUpstreamDownNothingCachedIsUnavailable(t *testing.T) {
	up := newFakeUpstream(t)
	e := newEnv(t, up)
	up.srv.Close()
	r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if c := errorCode(t, r); c != CodeUnavailable {
		t.Errorf("code %s", c)
	}
}

func TestRateLimitedNothingCached(t *testing.T) {
	up := newFakeUpstream(t)
	up.push("library/app:v1", randomImage(t, 256, 1))
	up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
		return true
	})
	e := newEnv(t, up)
	r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if c := errorCode(t, r); c != CodeTooManyRequests {
		t.Errorf("code %s", c)
	}
	if got := r.header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After = %q", got)
	}
}

func TestTagRevalidation(t *testing.T) {
	tests := []struct {
		name       string
		change     func(t *testing.T, up *fakeUpstream)
		status     int
		source     string
		newDigest  bool
		wantHeads  int
		wantGets   int
		wantWarned bool
	}{
		{"unchanged: one HEAD, no GET", func(*testing.T, *fakeUpstream) {}, 200, "hit", false, 1, 1, false},
		{"moved: HEAD then GET of the new digest", func(t *testing.T, up *fakeUpstream) {
			up.push("library/app:v1", randomImage(t, 256, 1))
		}, 200, "miss", true, 1, 2, false},
		{"upstream down: stale with a Warning", func(t *testing.T, up *fakeUpstream) {
			up.setFault(func(w http.ResponseWriter, r *http.Request) bool { w.WriteHeader(503); return true })
		}, 200, "stale", false, 1, 1, true},
		{"rate-limited: stale with a Warning", func(t *testing.T, up *fakeUpstream) {
			up.setFault(func(w http.ResponseWriter, r *http.Request) bool { w.WriteHeader(429); return true })
		}, 200, "stale", false, 1, 1, true},
		{"deleted upstream: 404", func(t *testing.T, up *fakeUpstream) {
			up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				w.WriteHeader(404)
				fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"gone"}]}`)
				return true
			})
		}, 404, "", false, 1, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t)
			first := up.push("library/app:v1", randomImage(t, 256, 1))
			e := newEnv(t, up, withPrefetch(false))
			if r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll); r.status != 200 {
				t.Fatalf("cold: %d", r.status)
			}
			if r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll); r.header.Get("X-Pullcache") != "hit" {
				t.Fatalf("within TTL: X-Pullcache %q", r.header.Get("X-Pullcache"))
			}
			if n := up.calls("HEAD manifests"); n != 0 {
				t.Fatalf("HEADs within the TTL: %d", n)
			}
			tc.change(t, up)
			e.clock.advance(2 * time.Minute)
			r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if got := r.header.Get("X-Pullcache"); got != tc.source {
				t.Errorf("X-Pullcache = %q, want %q", got, tc.source)
			}
			if changed := r.status == 200 && r.header.Get("Docker-Content-Digest") != first.String(); changed != tc.newDigest {
				t.Errorf("digest changed = %v, want %v", changed, tc.newDigest)
			}
			if warned := r.header.Get("Warning") != ""; warned != tc.wantWarned {
				t.Errorf("Warning header present = %v, want %v", warned, tc.wantWarned)
			}
			if n := up.calls("HEAD manifests"); n != tc.wantHeads {
				t.Errorf("upstream HEADs = %d, want %d", n, tc.wantHeads)
			}
			if n := up.calls("GET manifests"); n != tc.wantGets {
				t.Errorf("upstream GETs = %d, want %d", n, tc.wantGets)
			}
		})
	}
}

func TestTagListPaging(t *testing.T) {
	up := newFakeUpstream(t)
	img := randomImage(t, 128, 1)
	for _, tag := range []string{"c", "a", "e", "b", "d"} {
		up.push("library/app:"+tag, img)
	}
	e := newEnv(t, up, withPrefetch(false))
	tests := []struct {
		query, body, link string
	}{
		{"", `{"name":"library/app","tags":["a","b","c","d","e"]}`, ""},
		{"?n=2", `{"name":"library/app","tags":["a","b"]}`, `</v2/library/app/tags/list?last=b&n=2>; rel="next"`},
		{"?n=2&last=b", `{"name":"library/app","tags":["c","d"]}`, `</v2/library/app/tags/list?last=d&n=2>; rel="next"`},
		{"?n=2&last=d", `{"name":"library/app","tags":["e"]}`, ""},
		{"?last=bb", `{"name":"library/app","tags":["c","d","e"]}`, ""},
		{"?n=0", `{"name":"library/app","tags":[]}`, ""},
	}
	for _, tc := range tests {
		r := e.get("/v2/library/app/tags/list" + tc.query)
		if r.status != 200 || string(r.body) != tc.body {
			t.Errorf("%s: status %d body %s, want %s", tc.query, r.status, r.body, tc.body)
		}
		if got := r.header.Get("Link"); got != tc.link {
			t.Errorf("%s: Link %q, want %q", tc.query, got, tc.link)
		}
	}
	if n := up.calls("GET tags"); n != 1 {
		t.Errorf("upstream tag list GETs = %d, want 1 within the TTL", n)
	}
	up.srv.Close()
	e.clock.advance(2 * time.Minute)
	r := e.get("/v2/library/app/tags/list?n=1")
	if r.status != 200 || string(r.body) != `{"name":"library/app","tags":["a"]}` || r.header.Get("Warning") == "" {
		t.Errorf("upstream down: status %d body %s warning %q", r.status, r.body, r.header.Get("Warning"))
	}
}

func TestRestartServesEverythingWithUpstreamDown(t *testing.T) {
	up := newFakeUpstream(t)
	img := randomImage(t, 4096, 2)
	d := up.push("library/app:v1", img)
	dir := t.TempDir()
	e := newEnvIn(t, up, dir, withPrefetch(false))
	e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	cfg, _ := img.ConfigName()
	blobs := []v1.Hash{cfg}
	for i := range 2 {
		ld, _ := layerBytes(t, img, i)
		blobs = append(blobs, ld)
	}
	for _, b := range blobs {
		if r := e.get("/v2/library/app/blobs/" + b.String()); r.status != 200 {
			t.Fatalf("cold blob: %d", r.status)
		}
	}
	e.stop()
	up.srv.Close()

	e2 := newEnvIn(t, up, dir, withPrefetch(false))
	e2.clock.advance(time.Hour) // the tag is stale: revalidation fails, stale is served
	r := e2.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	if r.status != 200 || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("manifest after restart: status %d digest %q", r.status, r.header.Get("Docker-Content-Digest"))
	}
	for _, b := range blobs {
		r := e2.get("/v2/library/app/blobs/" + b.String())
		if r.status != 200 || fmt.Sprintf("%x", sha256.Sum256(r.body)) != b.Hex {
			t.Errorf("blob %s after restart: status %d", b, r.status)
		}
	}
}

func TestRepositoryIsThePermissionBoundary(t *testing.T) {
	up := newFakeUpstream(t)
	img := randomImage(t, 1024, 1)
	up.push("private/app:v1", img)
	up.push("public/other:v1", randomImage(t, 256, 1))
	d, _ := layerBytes(t, img, 0)
	// The in-memory upstream shares blobs across repositories; a real
	// registry answers 404 for a blob the repository does not have.
	up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v2/public/other/blobs/") {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		return false
	})
	e := newEnv(t, up, withPrefetch(false))
	if r := e.get("/v2/private/app/blobs/" + d.String()); r.status != 200 {
		t.Fatalf("private blob: %d", r.status)
	}
	r := e.get("/v2/public/other/blobs/" + d.String())
	if r.status != http.StatusNotFound {
		t.Fatalf("blob of another repository served: status %d", r.status)
	}
	if c := errorCode(t, r); c != CodeBlobUnknown {
		t.Errorf("code %s", c)
	}
	if n := up.calls("HEAD blobs"); n != 1 {
		t.Errorf("upstream blob HEADs = %d, want 1 (asked before serving the cached blob)", n)
	}
}

func TestBearerTokenUpstream(t *testing.T) {
	up := newFakeUpstream(t)
	img := randomImage(t, 1024, 1)
	d := up.push("library/app:v1", img)
	up.token = "s3cret"
	e := newEnv(t, up, withPrefetch(false))
	r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	if r.status != 200 || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ld, want := layerBytes(t, img, 0)
	if r := e.get("/v2/library/app/blobs/" + ld.String()); !bytes.Equal(r.body, want) {
		t.Fatalf("blob through a token-protected upstream: status %d", r.status)
	}
	if n := up.calls("GET token"); n != 1 {
		t.Errorf("token requests = %d, want 1 (kept per repository)", n)
	}
}

func withOffline() envOption { return func(o *Options, _ *cache.Options) { o.Offline = true } }

func TestOfflineServesCacheAndNeverCallsUpstream(t *testing.T) {
	up := newFakeUpstream(t)
	img := randomImage(t, 1024, 1)
	d := up.push("library/app:v1", img)
	up.push("library/cold:v1", randomImage(t, 256, 1))
	ld, want := layerBytes(t, img, 0)
	dir := t.TempDir()
	online := newEnvIn(t, up, dir, withPrefetch(false))
	online.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	online.get("/v2/library/app/blobs/" + ld.String())
	online.stop()
	before := up.calls("")

	e := newEnvIn(t, up, dir, withOffline())
	e.clock.advance(24 * time.Hour) // far past the tag TTL: no revalidation offline
	r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll)
	if r.status != 200 || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("cached tag offline: status %d: %s", r.status, r.body)
	}
	if r := e.get("/v2/library/app/blobs/" + ld.String()); !bytes.Equal(r.body, want) {
		t.Errorf("cached blob offline: status %d", r.status)
	}
	if r := e.get("/v2/library/app/tags/list"); r.status != 200 || string(r.body) != `{"name":"library/app","tags":["v1"]}` {
		t.Errorf("tag list offline: status %d body %s", r.status, r.body)
	}
	for path, code := range map[string]string{
		"/v2/library/cold/manifests/v1":                    CodeManifestUnknown,
		"/v2/library/cold/blobs/sha256:" + digestHex(want): CodeBlobUnknown,
		"/v2/library/cold/tags/list":                       CodeNameUnknown,
	} {
		r := e.get(path, "Accept", acceptAll)
		if r.status != 404 {
			t.Errorf("%s offline: status %d", path, r.status)
			continue
		}
		if c := errorCode(t, r); c != code {
			t.Errorf("%s offline: code %s, want %s", path, c, code)
		}
	}
	if n := up.calls(""); n != before {
		t.Errorf("offline mirror sent %d requests upstream", n-before)
	}
}

func digestHex(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

func withTagTTL(d time.Duration) envOption {
	return func(o *Options, _ *cache.Options) { o.TagTTL = d }
}

// TestTagTTLZeroAsksEveryTime: with a TTL of 0 nothing by tag is trusted,
// so a change upstream shows in the very next answer, the clock standing
// still (as a registry's own clients and the OCI conformance suite expect
// after a push).
func TestTagTTLZeroAsksEveryTime(t *testing.T) {
	tests := []struct {
		name   string
		path   func(subject v1.Hash) string
		change func(t *testing.T, up *fakeUpstream, img v1.Image)
		asks   string
	}{
		{"manifest by tag", func(v1.Hash) string { return "/v2/library/app/manifests/v1" },
			func(t *testing.T, up *fakeUpstream, _ v1.Image) { up.push("library/app:v1", randomImage(t, 256, 1)) },
			"HEAD manifests"},
		{"tag list", func(v1.Hash) string { return "/v2/library/app/tags/list" },
			func(t *testing.T, up *fakeUpstream, img v1.Image) { up.push("library/app:v2", img) },
			"GET tags"},
		{"referrers", func(s v1.Hash) string { return "/v2/library/app/referrers/" + s.String() },
			func(t *testing.T, up *fakeUpstream, img v1.Image) {
				up.push("library/app:sig", artifact(t, img, sigType))
			},
			"GET referrers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t, registry.WithReferrersSupport(true))
			img := randomImage(t, 256, 1)
			subject := up.push("library/app:v1", img)
			e := newEnv(t, up, withPrefetch(false), withTagTTL(0))
			first := e.get(tc.path(subject), "Accept", acceptAll)
			if first.status != 200 {
				t.Fatalf("first: %d %s", first.status, first.body)
			}
			asked := up.calls(tc.asks)
			tc.change(t, up, img)
			second := e.get(tc.path(subject), "Accept", acceptAll)
			if string(second.body) == string(first.body) {
				t.Errorf("the answer after the change is the cached one: %s", second.body)
			}
			if n := up.calls(tc.asks) - asked; n != 1 {
				t.Errorf("upstream %q after the change = %d, want 1", tc.asks, n)
			}
		})
	}
}

// pushSHA512 pushes img to repo, then its manifest again under its sha512
// digest, and returns that digest.
func (u *fakeUpstream) pushSHA512(repo string, img v1.Image) v1.Hash {
	u.t.Helper()
	u.push(repo+":v1", img)
	b, err := img.RawManifest()
	if err != nil {
		u.t.Fatal(err)
	}
	sum := sha512.Sum512(b)
	d := v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(sum[:])}
	mt, err := img.MediaType()
	if err != nil {
		u.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPut, u.srv.URL+"/v2/"+repo+"/manifests/"+d.String(), bytes.NewReader(b))
	if err != nil {
		u.t.Fatal(err)
	}
	req.Header.Set("Content-Type", string(mt))
	resp, err := (&http.Client{Transport: u.setup}).Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		u.t.Fatalf("push %s@%s: %d", repo, d, resp.StatusCode)
	}
	return d
}

// TestManifestBySHA512Digest: a manifest asked for by a sha512 digest is
// checked against that digest, kept under it and served with it (the
// conformance suite's sha512 content), never cached under its sha256 only.
func TestManifestBySHA512Digest(t *testing.T) {
	tests := []struct {
		name string
		// lie makes the upstream answer other bytes for the digest.
		lie    bool
		status int
		again  string // X-Pullcache of a second request
	}{
		{"verified and kept", false, http.StatusOK, "hit"},
		{"bytes that do not hash to it", true, http.StatusBadGateway, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t)
			d := up.pushSHA512("library/app", randomImage(t, 256, 1))
			if tc.lie {
				other, err := randomImage(t, 256, 1).RawManifest()
				if err != nil {
					t.Fatal(err)
				}
				up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
					w.Header().Set("Content-Type", string(types.DockerManifestSchema2))
					w.Write(other)
					return true
				})
			}
			e := newEnv(t, up, withPrefetch(false))
			path := "/v2/library/app/manifests/" + d.String()
			r := e.get(path, "Accept", acceptAll)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status != http.StatusOK {
				return
			}
			if got := r.header.Get("Docker-Content-Digest"); got != d.String() {
				t.Errorf("Docker-Content-Digest = %s, want %s", got, d)
			}
			if got := e.get(path, "Accept", acceptAll).header.Get("X-Pullcache"); got != tc.again {
				t.Errorf("again: X-Pullcache %q, want %q", got, tc.again)
			}
		})
	}
}
