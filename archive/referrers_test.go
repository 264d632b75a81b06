package archive_test

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
)

func TestOCILayoutReferrers(t *testing.T) {
	dir, subject, sig, sbom := archivetest.ReferrerLayoutDir(t, "docker.io/library/app:v1")
	a, err := archive.Open(dir, archive.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if len(a.Images) != 1 || a.Images[0].Names[0].String() != "docker.io/library/app:v1" {
		t.Fatalf("images %+v: the referrers must not count as images", a.Images)
	}
	got := map[v1.Hash]string{}
	for _, r := range a.Referrers {
		if r.Subject != subject {
			t.Errorf("referrer %s: subject %s, want %s", r.Descriptor.Digest, r.Subject, subject)
		}
		if len(r.Manifests) == 0 || r.Manifests[0].Digest != r.Descriptor.Digest || len(r.Blobs) == 0 {
			t.Errorf("referrer %s: manifests %d, blobs %d", r.Descriptor.Digest, len(r.Manifests), len(r.Blobs))
		}
		got[r.Descriptor.Digest] = r.Descriptor.ArtifactType
	}
	if len(got) != 2 || got[sig] != archivetest.SignatureType || got[sbom] != archivetest.SBOMType {
		t.Errorf("referrers %v, want the signature (ORAS style) and the SBOM (fallback tag)", got)
	}
}
