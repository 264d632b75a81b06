package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// conformanceSuite is the OCI distribution-spec conformance suite's binary,
// github.com/opencontainers/distribution-spec/conformance at the version
// scripts/install-test-deps.sh installs.
const conformanceSuite = "conformance"

// TestOCIConformancePull runs the OCI distribution-spec conformance suite
// against pullcache. pullcache takes no pushes, so a splitter sends the
// suite's writes (and upload sessions) to the upstream, the reference
// registry, and every read to pullcache: the suite pushes its content
// upstream and pulls each manifest, blob, tag list and referrers list back
// through the mirror. Tags move and repositories appear as the suite
// pushes, so pullcache trusts nothing by tag (--tag-ttl 0) and remembers no
// miss (--negative-ttl 0). Deletes are off (a mirror keeps what it
// fetched), and so is the content the reference registry itself cannot hold
// (sha512 content, a manifest whose layers were never pushed, and subjects,
// for it has no referrers API): with them the suite fails against the
// registry alone.
func TestOCIConformancePull(t *testing.T) {
	requireE2E(t)
	requireTools(t, conformanceSuite, "registry")
	suite, _ := exec.LookPath(conformanceSuite)
	upstream := startReferenceRegistry(t)
	srv := startPullcache(t, t.TempDir(), map[string]string{"docker.io": "http://" + upstream},
		"--tag-ttl", "0", "--negative-ttl", "0")
	var reads atomic.Int64
	split := httptest.NewServer(splitter(t, "http://"+upstream, "http://"+srv.addr, &reads))
	t.Cleanup(split.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The suite's report (report.html, results.yaml, junit.xml) is kept
	// with the test's artifacts (test-output/ under ./scripts/test.sh).
	results := t.ArtifactDir()
	cmd := exec.CommandContext(ctx, suite)
	cmd.Dir = t.TempDir() // it reads ./oci-conformance.yaml when there is one
	cmd.Env = append(serverEnv(),
		"OCI_REGISTRY="+strings.TrimPrefix(split.URL, "http://"),
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_RESULTS_DIR="+results,
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_DATA_SHA512=false",
		"OCI_DATA_NONDISTRIBUTABLE=false",
		"OCI_DATA_SUBJECT=false",
		"OCI_DATA_SUBJECT_MISSING=false",
		"OCI_DATA_SUBJECT_LIST=false",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the conformance suite failed through pullcache: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OCI Conformance Result: Pass") {
		t.Fatalf("the conformance suite does not report a pass:\n%s", out)
	}
	checkServedReads(t, srv, reads.Load())
}

// checkServedReads: pullcache answered every read the splitter sent it
// (its log has one request line each), and served manifests, blobs and tag
// lists of the suite's repositories with success: the suite's pass is
// pullcache's, not the upstream's.
func checkServedReads(t *testing.T, srv *pullcache, sent int64) {
	t.Helper()
	var reqs []logRequest
	// The last lines may still be on their way from pullcache's stderr.
	deadline := time.Now().Add(10 * time.Second)
	for {
		reqs = pullcacheRequests(srv.logs.String())
		if int64(len(reqs)) >= sent || !time.Now().Before(deadline) {
			break
		}
		<-time.After(20 * time.Millisecond)
	}
	if int64(len(reqs)) != sent {
		t.Errorf("the splitter sent pullcache %d reads; its log has %d requests", sent, len(reqs))
	}
	served := map[string]int{}
	for _, r := range reqs {
		if !strings.HasPrefix(r.path, "/v2/conformance/") || !strings.HasPrefix(r.status, "2") {
			continue
		}
		for _, kind := range []string{"/manifests/", "/blobs/", "/tags/list"} {
			if strings.Contains(r.path, kind) {
				served[kind]++
			}
		}
	}
	for _, kind := range []string{"/manifests/", "/blobs/", "/tags/list"} {
		if served[kind] == 0 {
			t.Errorf("pullcache served no %s read of the suite's repositories with success (%v)", kind, served)
		}
	}
	t.Logf("pullcache answered all %d reads; served with success: %v", sent, served)
}

// splitter sends reads (GET, HEAD) to mirror, counting them in reads, and everything else, and any
// request on an upload session, to upstream. The upstream builds upload
// Locations from the Host it is sent, the splitter's own, so the suite
// keeps talking to the splitter.
func splitter(t *testing.T, upstream, mirror string, reads *atomic.Int64) http.Handler {
	t.Helper()
	up, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := url.Parse(mirror)
	if err != nil {
		t.Fatal(err)
	}
	toUpstream, toMirror := httputil.NewSingleHostReverseProxy(up), httputil.NewSingleHostReverseProxy(mi)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		if !read || strings.Contains(r.URL.Path, "/blobs/uploads/") {
			toUpstream.ServeHTTP(w, r)
			return
		}
		reads.Add(1)
		toMirror.ServeHTTP(w, r)
	})
}
