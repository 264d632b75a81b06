package sharedstore

import (
	"bytes"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/upstream"
)

// TestManifestObjectIsCheckedAgainstItsDigest: a manifest object reads
// back as it was written, and one whose bytes changed is refused rather
// than served under the digest.
func TestManifestObjectIsCheckedAgainstItsDigest(t *testing.T) {
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	h, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	obj := encodeManifest(&upstream.Manifest{Bytes: body, MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: h})
	m, err := decodeManifest(h, obj)
	if err != nil || !bytes.Equal(m.Bytes, body) || m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Digest != h {
		t.Fatalf("round trip: %+v, %v", m, err)
	}
	damaged := bytes.Clone(obj)
	damaged[len(damaged)-2] = ' '
	if _, err := decodeManifest(h, damaged); err == nil {
		t.Error("a damaged manifest object was accepted")
	}
	if _, err := decodeManifest(h, body); err == nil {
		t.Error("an object without its media type line was accepted")
	}
}
