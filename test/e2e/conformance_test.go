package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
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
	split := httptest.NewServer(splitter(t, "http://"+upstream, "http://"+srv.addr))
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
}

// splitter sends reads (GET, HEAD) to mirror and everything else, and any
// request on an upload session, to upstream. The upstream builds upload
// Locations from the Host it is sent, the splitter's own, so the suite
// keeps talking to the splitter.
func splitter(t *testing.T, upstream, mirror string) http.Handler {
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
		toMirror.ServeHTTP(w, r)
	})
}
