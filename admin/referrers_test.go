package admin_test

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
	"github.com/pullcache/pullcache/cache"
)

// referrersIn is what the store lists as referrers of subject in repo.
func referrersIn(t *testing.T, s *cache.Store, repo cache.Repo, subject v1.Hash) map[v1.Hash]string {
	t.Helper()
	refs, _, err := s.Referrers(repo, subject)
	if err != nil {
		t.Fatalf("referrers of %s in %s: %v", subject, repo, err)
	}
	out := map[v1.Hash]string{}
	for _, d := range refs {
		out[d.Digest] = d.ArtifactType
		if _, err := s.Manifest(d.Digest); err != nil || !s.Linked(repo, d.Digest) {
			t.Errorf("referrer %s: not stored under %s (%v)", d.Digest, repo, err)
		}
	}
	return out
}

// TestReferrersTravelWithTheirSubjects: an OCI layout's signature and SBOM
// are imported as referrers of their image, exported with it, and
// imported again on the other side.
func TestReferrersTravelWithTheirSubjects(t *testing.T) {
	dir, subject, sig, sbom := archivetest.ReferrerLayoutDir(t, "docker.io/library/app:v1")
	repo := cache.Repo{Registry: "docker.io", Name: "library/app"}
	want := map[v1.Hash]string{sig: archivetest.SignatureType, sbom: archivetest.SBOMType}

	first := openStore(t)
	done, err := admin.ImportFile(first, dir, archive.Options{TempDir: t.TempDir()}, at)
	if err != nil {
		t.Fatal(err)
	}
	referrerLines := 0
	for _, im := range done {
		if im.Subject == subject.String() && im.Skipped == "" {
			referrerLines++
		}
	}
	if referrerLines != 2 {
		t.Errorf("import reported %+v, want the image and 2 referrers", done)
	}
	if got := referrersIn(t, first, repo, subject); len(got) != 2 || got[sig] != want[sig] || got[sbom] != want[sbom] {
		t.Fatalf("after import: referrers %v, want %v", got, want)
	}

	bundle, res := exportBytes(t, first, admin.ExportOptions{Names: []archive.Name{{Registry: "docker.io", Repository: "library/app", Tag: "v1"}}})
	if len(res.Skipped) != 0 {
		t.Errorf("export skipped %v", res.Skipped)
	}
	second := openStore(t)
	if _, err := importBytes(t, second, bundle, archive.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := referrersIn(t, second, repo, subject); len(got) != 2 || got[sig] != want[sig] || got[sbom] != want[sbom] {
		t.Errorf("after export and import: referrers %v, want %v", got, want)
	}
}

func TestExportReportsReferrersNotCached(t *testing.T) {
	dir, subject, _, _ := archivetest.ReferrerLayoutDir(t, "docker.io/library/app:v1")
	s := openStore(t)
	if _, err := admin.ImportFile(s, dir, archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	repo := cache.Repo{Registry: "docker.io", Name: "library/app"}
	ghost := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: archivetest.Digest([]byte("ghost")), Size: 5, ArtifactType: "application/x-ghost"}
	if err := s.AddReferrers(repo, subject, []v1.Descriptor{ghost}, at); err != nil {
		t.Fatal(err)
	}
	_, res := exportBytes(t, s, admin.ExportOptions{Names: []archive.Name{{Registry: "docker.io", Repository: "library/app", Tag: "v1"}}})
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], ghost.Digest.String()) {
		t.Errorf("skipped %v, want the referrer that is not cached", res.Skipped)
	}
}

func TestReferrersFollowTheirSubjectsName(t *testing.T) {
	dir, _, sig, _ := archivetest.ReferrerLayoutDir(t, "docker.io/library/app:v1")
	s := openStore(t)
	// Name the image elsewhere: the referrers still follow it by digest.
	done, err := admin.ImportFile(s, dir, archive.Options{TempDir: t.TempDir(), Tags: []string{"ghcr.io/org/other:v2"}}, at)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, im := range done {
		found = found || (im.Digest == sig.String() && im.Name == "ghcr.io/org/other@"+im.Subject)
	}
	if !found {
		t.Errorf("imported %+v: the signature should follow its image to ghcr.io/org/other", done)
	}
}

func TestImportSkipsReferrersWithoutTheirSubject(t *testing.T) {
	dir, _, _, _ := archivetest.ReferrerLayoutDir(t, "docker.io/library/app:v1")
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	orphan := archivetest.Artifact(t, elsewhere, archivetest.SignatureType)
	if err := p.AppendImage(orphan); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	done, err := admin.ImportFile(s, dir, archive.Options{TempDir: t.TempDir()}, at)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := orphan.Digest()
	skipped := false
	for _, im := range done {
		skipped = skipped || (im.Digest == d.String() && im.Skipped != "")
	}
	if !skipped {
		t.Errorf("imported %+v: the referrer of an image not in the archive should be reported skipped", done)
	}
	if _, err := s.Manifest(d); err == nil {
		t.Error("the orphan referrer was stored")
	}
}

// TestDescribeListsReferrers: GET /admin/image names the image's
// referrers from the stored list, with their type, size and annotations,
// and says which are cached.
func TestDescribeListsReferrers(t *testing.T) {
	dir, subject, sig, sbom := archivetest.ReferrerLayoutDir(t, "docker.io/library/app:v1")
	s := openStore(t)
	if _, err := admin.ImportFile(s, dir, archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	repo := cache.Repo{Registry: "docker.io", Name: "library/app"}
	ghost := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: archivetest.Digest([]byte("ghost")),
		Size: 5, ArtifactType: "application/x-ghost", Annotations: map[string]string{"org.opencontainers.image.created": "2026-01-02T03:04:05Z"}}
	if err := s.AddReferrers(repo, subject, []v1.Descriptor{ghost}, at); err != nil {
		t.Fatal(err)
	}
	info, err := admin.New(admin.Options{Store: s}).Describe("docker.io/library/app:v1", true)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]admin.ReferrerInfo{}
	for _, r := range info.Referrers {
		got[r.Digest] = r
	}
	if len(got) != 3 {
		t.Fatalf("referrers %+v, want the signature, the SBOM and the ghost", info.Referrers)
	}
	if r := got[sig.String()]; r.ArtifactType != archivetest.SignatureType || !r.Cached || r.Size == 0 {
		t.Errorf("signature %+v", r)
	}
	if r := got[sbom.String()]; r.ArtifactType != archivetest.SBOMType || !r.Cached {
		t.Errorf("SBOM %+v", r)
	}
	if r := got[ghost.Digest.String()]; r.Cached || r.Annotations["org.opencontainers.image.created"] != "2026-01-02T03:04:05Z" {
		t.Errorf("ghost %+v: want not cached, with its annotation", r)
	}
	if !info.ReferrersListed.Equal(at) {
		t.Errorf("listed at %s, want %s", info.ReferrersListed, at)
	}
	bare, err := admin.New(admin.Options{Store: s}).Describe("docker.io/library/app@"+sig.String(), true)
	if err != nil {
		t.Fatal(err)
	}
	if bare.Referrers != nil || !bare.ReferrersListed.IsZero() {
		t.Errorf("an image never listed: referrers %+v at %s, want none", bare.Referrers, bare.ReferrersListed)
	}
}
