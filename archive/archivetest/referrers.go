package archivetest

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact types of ReferrerLayoutDir's referrers.
const (
	SignatureType = "application/vnd.example.signature"
	SBOMType      = "application/spdx+json"
)

// Artifact is a small OCI artifact of artifactType (its config media
// type) whose subject is subject.
func Artifact(t testing.TB, subject partial.Describable, artifactType string) v1.Image {
	t.Helper()
	desc, err := partial.Descriptor(subject)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.MediaType(artifactType))
	return mutate.Subject(img, *desc).(v1.Image)
}

// ReferrerLayoutDir writes an OCI layout holding an image named ref, a
// signature of it recorded as ORAS does (an index.json entry without a
// name whose manifest has the subject) and an SBOM of it recorded as
// regclient does (under the referrers tag schema: an entry named
// sha256-<hex> whose index lists it). It returns the directory, the
// image's digest and the digests of the signature and the SBOM.
func ReferrerLayoutDir(t testing.TB, ref string) (dir string, subject, sig, sbom v1.Hash) {
	t.Helper()
	dir = t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		t.Fatal(err)
	}
	s, b := Artifact(t, img, SignatureType), Artifact(t, img, SBOMType)
	if err := p.AppendImage(s); err != nil {
		t.Fatal(err)
	}
	subject, _ = img.Digest()
	fallback := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: b}), types.OCIImageIndex)
	if err := p.AppendIndex(fallback, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "sha256-" + subject.Hex,
	})); err != nil {
		t.Fatal(err)
	}
	sig, _ = s.Digest()
	sbom, _ = b.Digest()
	return dir, subject, sig, sbom
}
