package proxy

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/cache"
)

// ociIndex is an OCI index of a linux/amd64 and a linux/arm64 OCI image.
func ociIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		adds = append(adds, mutate.IndexAddendum{Add: ociImage(t), Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1, Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
}

// Accept headers as clients send them.
const (
	acceptOCIOnly     = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
	acceptOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	acceptSchema2Only = "application/vnd.docker.distribution.manifest.v2+json"
	acceptDockerOnly  = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
	acceptListsOnly   = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"
	acceptWildcard    = "*/*"
	acceptQZeroList   = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json;q=0"
)

// TestEveryStoredManifestIsServedToEveryAccept: each (stored type, Accept)
// pair gets 200 with the stored bytes and their own Content-Type, except a
// Docker manifest list asked for by a client of Docker schema 2 images
// only, which gets the default platform's image (as Docker Hub answers).
func TestEveryStoredManifestIsServedToEveryAccept(t *testing.T) {
	up := newFakeUpstream(t)
	list, imgs := twoPlatformIndex(t)
	stored := map[string]struct {
		digest, mediaType string
	}{
		"schema2":  {up.push("library/schema2:v1", randomImage(t, 256, 1)).String(), string(types.DockerManifestSchema2)},
		"oci":      {up.push("library/oci:v1", ociImage(t)).String(), string(types.OCIManifestSchema1)},
		"ociindex": {up.pushIndex("library/ociindex:v1", ociIndex(t)).String(), string(types.OCIImageIndex)},
		"list":     {up.pushIndex("library/list:v1", list).String(), string(types.DockerManifestList)},
	}
	amd64 := mustDigest(t, imgs["amd64"])
	e := newEnv(t, up, withPrefetch(false))

	accepts := map[string]string{
		"OCI-only": acceptOCIOnly, "OCI manifest only": acceptOCIManifest, "schema2 only": acceptSchema2Only,
		"Docker-only": acceptDockerOnly, "lists-only": acceptListsOnly, "*/*": acceptWildcard, "none": "",
		"list refused with q=0": acceptQZeroList,
	}
	for repo, want := range stored {
		for acceptName, accept := range accepts {
			wantDigest, wantType := want.digest, want.mediaType
			if repo == "list" && (accept == acceptSchema2Only || accept == acceptQZeroList) {
				wantDigest, wantType = amd64, string(types.DockerManifestSchema2)
			}
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				for _, ref := range []string{"v1", want.digest} {
					name := repo + " × " + acceptName + " " + method + " " + ref[:min(len(ref), 10)]
					t.Run(name, func(t *testing.T) {
						var hdr []string
						if accept != "" {
							hdr = []string{"Accept", accept}
						}
						r := e.do(method, "/v2/library/"+repo+"/manifests/"+ref, hdr...)
						if r.status != http.StatusOK {
							t.Fatalf("status %d: %s", r.status, r.body)
						}
						if got := r.header.Get("Content-Type"); got != wantType {
							t.Errorf("Content-Type %q, want %q", got, wantType)
						}
						if got := r.header.Get("Docker-Content-Digest"); got != wantDigest {
							t.Errorf("Docker-Content-Digest %s, want %s", got, wantDigest)
						}
						if method == http.MethodGet && digestHex(r.body) != strings.TrimPrefix(wantDigest, "sha256:") {
							t.Errorf("body does not hash to %s", wantDigest)
						}
					})
				}
			}
		}
	}
}

func TestSubstitutionUsesTheConfiguredPlatformAndSaysSo(t *testing.T) {
	up := newFakeUpstream(t)
	list, imgs := twoPlatformIndex(t)
	up.pushIndex("library/list:v1", list)
	var logs bytes.Buffer
	e := newEnv(t, up, withPrefetch(false), func(o *Options, _ *cache.Options) {
		o.DefaultPlatform = v1.Platform{OS: "linux", Architecture: "arm64"}
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	r := e.get("/v2/library/list/manifests/v1", "Accept", acceptSchema2Only)
	if got, want := r.header.Get("Docker-Content-Digest"), mustDigest(t, imgs["arm64"]); got != want {
		t.Fatalf("status %d, digest %s, want the arm64 image %s", r.status, got, want)
	}
	if !strings.Contains(logs.String(), "substituted=") {
		t.Errorf("the request's log line does not say the list was substituted:\n%s", logs.String())
	}
}

func TestParseAccept(t *testing.T) {
	tests := []struct {
		values        []string
		anything      bool
		names         []string
		imageForLists bool
	}{
		{nil, true, nil, false},
		{[]string{""}, false, nil, false},
		{[]string{"*/*"}, true, nil, false},
		{[]string{acceptSchema2Only}, false, []string{acceptSchema2Only}, true},
		{[]string{"Application/Vnd.Docker.Distribution.Manifest.V2+JSON; q=0.5"}, false, []string{acceptSchema2Only}, true},
		{[]string{acceptSchema2Only, "application/*"}, true, []string{acceptSchema2Only}, false},
		{[]string{acceptDockerOnly}, false, []string{acceptSchema2Only, string(types.DockerManifestList)}, false},
		{[]string{acceptQZeroList}, false, []string{acceptSchema2Only}, true},
		{[]string{"nonsense, a/b;q=x, /x, y/"}, false, nil, false},
	}
	for _, tc := range tests {
		a := parseAccept(tc.values)
		if a.anything != tc.anything {
			t.Errorf("%q: anything = %v, want %v", tc.values, a.anything, tc.anything)
		}
		if len(a.types) != len(tc.names) {
			t.Errorf("%q: types %v, want %v", tc.values, a.types, tc.names)
		}
		for _, n := range tc.names {
			if !a.names(n) {
				t.Errorf("%q: does not name %s", tc.values, n)
			}
		}
		if got := a.wantsImageForList(); got != tc.imageForLists {
			t.Errorf("%q: wantsImageForList = %v, want %v", tc.values, got, tc.imageForLists)
		}
	}
}

func FuzzParseAccept(f *testing.F) {
	for _, s := range []string{acceptAll, acceptSchema2Only, acceptQZeroList, "*/*;q=0.1", "a/b;q=", ",,;", "x/y; q=1.0; q=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		a := parseAccept([]string{header})
		if len(a.types) > maxAcceptTypes {
			t.Fatalf("%d types kept from %q", len(a.types), header)
		}
		for mt := range a.types {
			if strings.ToLower(mt) != mt || !strings.Contains(mt, "/") {
				t.Fatalf("kept %q from %q", mt, header)
			}
		}
		if a.wantsImageForList() && a.anything {
			t.Fatalf("%q: a wildcard client would get a substitute", header)
		}
	})
}
