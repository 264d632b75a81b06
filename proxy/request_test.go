package proxy

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	digest := "sha256:ab12" + strings.Repeat("0", 60)
	tests := []struct {
		path, query        string
		route              Route
		registry, repo     string
		tag, digest, paths string
	}{
		{"/v2/", "", RouteBase, "", "", "", "", ""},
		{"/v2", "", RouteBase, "", "", "", "", ""},
		{"/v2/library/alpine/manifests/3.19", "", RouteManifest, "", "library/alpine", "3.19", "", "library/alpine"},
		{"/v2/alpine/manifests/latest", "ns=docker.io", RouteManifest, "docker.io", "alpine", "latest", "", "alpine"},
		{"/v2/ghcr.io/org/app/manifests/v1", "", RouteManifest, "ghcr.io", "org/app", "v1", "", "ghcr.io/org/app"},
		{"/v2/localhost:5000/app/blobs/" + digest, "", RouteBlob, "localhost:5000", "app", "", digest, "localhost:5000/app"},
		{"/v2/org/app/manifests/" + digest, "ns=GHCR.IO", RouteManifest, "ghcr.io", "org/app", "", digest, "org/app"},
		{"/v2/a/manifests/b/manifests/x", "", RouteManifest, "", "a/manifests/b", "x", "", "a/manifests/b"},
		{"/v2/org/app/tags/list", "n=10&last=b", RouteTags, "", "org/app", "", "", "org/app"},
		{"/v2/org/app/referrers/" + digest, "artifactType=a/b", RouteReferrers, "", "org/app", "", digest, "org/app"},
		{"/v2/_catalog", "n=1", RouteCatalog, "", "", "", "", ""},
		{"/v2/_catalog", "ns=GHCR.io", RouteCatalog, "ghcr.io", "", "", "", ""},
		{"/v2/ghcr.io/_catalog", "", RouteCatalog, "ghcr.io", "", "", "", "ghcr.io"},
	}
	for _, tc := range tests {
		q, _ := url.ParseQuery(tc.query)
		r, err := ParseRequest("GET", tc.path, q)
		if err != nil {
			t.Errorf("%s?%s: %v", tc.path, tc.query, err)
			continue
		}
		if r.Route != tc.route || r.Registry != tc.registry || r.Repo != tc.repo || r.Tag != tc.tag || r.PathName != tc.paths {
			t.Errorf("%s?%s: got %+v", tc.path, tc.query, r)
		}
		if tc.digest != "" && r.Digest.String() != tc.digest {
			t.Errorf("%s: digest %s", tc.path, r.Digest)
		}
	}
}

func TestWithRegistryAddsLibraryForDockerHubOnly(t *testing.T) {
	r := Request{Repo: "alpine"}
	if got := r.withRegistry("docker.io").Repo; got != "library/alpine" {
		t.Errorf("docker.io: %q", got)
	}
	if got := r.withRegistry("ghcr.io").Repo; got != "alpine" {
		t.Errorf("ghcr.io: %q", got)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2/library/alpine/manifests/latest", "/v2/ghcr.io/a/b/blobs/sha256:0000",
		"/v2/a/tags/list", "/v2/a/blobs/uploads/", "/v2//manifests/x", "/v2/a/manifests/",
	} {
		f.Add("GET", s, "ns=docker.io&n=3&last=a")
	}
	f.Fuzz(func(t *testing.T, method, path, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		r, err := ParseRequest(method, path, q)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if r.Route != RouteBase && r.Route != RouteCatalog && validName(r.Repo) != nil {
			t.Fatalf("accepted invalid repository %q from %q", r.Repo, path)
		}
		if r.Route == RouteManifest && r.Tag == "" && !r.ByDigest() {
			t.Fatalf("manifest request without reference: %q", path)
		}
		if (r.Route == RouteBlob || r.Route == RouteReferrers) && !r.ByDigest() {
			t.Fatalf("%s request without digest: %q", r.Route, path)
		}
	})
}
