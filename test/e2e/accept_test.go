package e2e

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestOCIOnlyClientPullsADockerSchema2Image is what an OCI-only tool does:
// it asks for a Docker schema 2 image with an Accept header that lists the
// OCI types only, and pulls it by what it gets. The mirror answers 200 with
// the manifest as stored and its own Content-Type (distribution-spec,
// "Pulling manifests"), GET and HEAD, cold and warm.
func TestOCIOnlyClientPullsADockerSchema2Image(t *testing.T) {
	requireE2E(t)
	img, err := schema2Image(2, 4096, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	im := &testImage{name: "schema2", tag: "v1", image: img}
	up := newUpstream(t)
	up.push(t, im)
	srv := startPullcache(t, t.TempDir(), map[string]string{"docker.io": up.url()})
	want := digestOf(t, img.Digest)
	accept := string(types.OCIManifestSchema1) + ", " + string(types.OCIImageIndex)
	base := "http://" + srv.addr + "/v2/library/schema2/"

	for _, pass := range []string{"cold", "warm"} {
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			resp, body := httpDo(t, method, base+"manifests/v1", accept)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: status %d: %s", pass, method, resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != string(types.DockerManifestSchema2) {
				t.Errorf("%s %s: Content-Type %q, want the stored Docker schema 2 type", pass, method, ct)
			}
			if d := resp.Header.Get("Docker-Content-Digest"); d != want {
				t.Errorf("%s %s: Docker-Content-Digest %s, want %s", pass, method, d, want)
			}
			if method == http.MethodGet && sha256Digest(body) != want {
				t.Errorf("%s GET: the body does not hash to %s", pass, want)
			}
		}
	}
	// And the client pulls what the manifest lists.
	_, body := httpDo(t, http.MethodGet, base+"manifests/"+want, accept)
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		resp, blob := httpDo(t, http.MethodGet, base+"blobs/"+d.Digest.String(), "")
		if resp.StatusCode != http.StatusOK || sha256Digest(blob) != d.Digest.String() {
			t.Errorf("blob %s: status %d, %d bytes", d.Digest, resp.StatusCode, len(blob))
		}
	}
}

func httpDo(t *testing.T, method, url, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}
