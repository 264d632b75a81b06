package cache

import (
	"errors"
	"testing"
	"time"
)

func TestIndexSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + hex64("c") + `","size":7},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + hex64("1") + `","size":42}]}`)
	m, err := ParseManifest(body, "", digestOf(body))
	if err != nil {
		t.Fatal(err)
	}
	repo := Repo{Registry: "docker.io", Name: "library/app"}
	at := time.Unix(1_700_000_000, 0)
	if err := s.PutManifest(repo, m, "v1", at); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTagList(repo, []string{"v1"}, at); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStore(t, dir)
	got, err := s.Manifest(m.Digest)
	if err != nil || string(got.Bytes) != string(body) || got.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("manifest after reopen: %v %+v", err, got)
	}
	tag, err := s.Tag(repo, "v1")
	if err != nil || tag.Digest != m.Digest || !tag.Confirmed.Equal(at) {
		t.Fatalf("tag after reopen: %+v %v", tag, err)
	}
	for _, d := range append([]Descriptor{{Digest: m.Digest}}, m.Refs...) {
		if !s.Linked(repo, d.Digest) {
			t.Errorf("%s not linked to %s", d.Digest, repo)
		}
	}
	if s.Linked(Repo{Registry: "ghcr.io", Name: "library/app"}, m.Digest) {
		t.Error("linked under another registry")
	}
	if n, err := s.blobSize(m.Refs[1].Digest); err != nil || n != 42 {
		t.Errorf("layer size from the manifest = %d, %v", n, err)
	}
	if tags, _, err := s.TagList(repo); err != nil || len(tags) != 1 {
		t.Errorf("tag list = %v, %v", tags, err)
	}
	if _, err := s.Tag(Repo{Registry: "ghcr.io", Name: "library/app"}, "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag of another registry: %v", err)
	}
	if err := s.DeleteTag(repo, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tag(repo, "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted tag: %v", err)
	}
	if _, ok := s.LastAccess(m.Digest); !ok {
		t.Error("no access time recorded for a served manifest")
	}
}

func hex64(c string) string {
	out := ""
	for range 64 {
		out += c
	}
	return out
}

func TestParseManifestRejectsGarbage(t *testing.T) {
	for _, tc := range []struct{ name, body, ct string }{
		{"not JSON", "{", ""},
		{"unknown type", `{"mediaType":"text/plain"}`, ""},
		{"bad digest", `{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:zz"}}`, ""},
	} {
		if _, err := ParseManifest([]byte(tc.body), tc.ct, digestOf([]byte(tc.body))); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}
