package cache

import (
	"errors"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestReferrersLists(t *testing.T) {
	s := openStore(t, t.TempDir())
	repo, other := Repo{Registry: "docker.io", Name: "library/app"}, Repo{Registry: "ghcr.io", Name: "library/app"}
	subject := digestOf([]byte("subject"))
	sig := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digestOf([]byte("sig")), Size: 3, ArtifactType: "application/vnd.example.sig"}
	sbom := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digestOf([]byte("sbom")), Size: 4, ArtifactType: "application/spdx+json"}
	if _, _, err := s.Referrers(repo, subject); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nothing recorded: err %v", err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	if err := s.PutReferrers(repo, subject, nil, t0); err != nil {
		t.Fatal(err)
	}
	got, at, err := s.Referrers(repo, subject)
	if err != nil || got == nil || len(got) != 0 || !at.Equal(t0) {
		t.Fatalf("an empty list: %v at %v, %v", got, at, err)
	}
	if err := s.PutReferrers(repo, subject, []v1.Descriptor{sig}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddReferrers(repo, subject, []v1.Descriptor{sig, sbom}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, at, err = s.Referrers(repo, subject)
	if err != nil || len(got) != 2 || got[0].Digest != sig.Digest || got[1].ArtifactType != sbom.ArtifactType || !at.Equal(t0.Add(time.Hour)) {
		t.Errorf("after adding: %+v at %v, %v", got, at, err)
	}
	if _, _, err := s.Referrers(other, subject); !errors.Is(err, ErrNotFound) {
		t.Errorf("another registry's repository shares the list: %v", err)
	}
}
