package cache

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPutBlobVerifies(t *testing.T) {
	s := openStore(t, t.TempDir())
	b := []byte("layer bytes")
	if err := s.PutBlob(digestOf(b), int64(len(b)), bytes.NewReader([]byte("other bytes"))); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("wrong bytes: %v", err)
	}
	if err := s.PutBlob(digestOf(b), 3, bytes.NewReader(b)); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("wrong size: %v", err)
	}
	if s.HasBlob(digestOf(b)) {
		t.Fatal("a rejected blob was committed")
	}
	if err := s.PutBlob(digestOf(b), int64(len(b)), bytes.NewReader(b)); err != nil || !s.HasBlob(digestOf(b)) {
		t.Fatalf("good blob: %v", err)
	}
}

func TestImportImageIsAllOrNothing(t *testing.T) {
	s := openStore(t, t.TempDir())
	layer := []byte("layer")
	config := []byte("{}")
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digestOf(config).String() + `","size":2},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + digestOf(layer).String() + `","size":5}]}`)
	m, err := ParseManifest(body, "", digestOf(body))
	if err != nil {
		t.Fatal(err)
	}
	repo := Repo{Registry: "docker.io", Name: "library/app"}
	s.PutBlob(digestOf(config), 2, bytes.NewReader(config))
	err = s.ImportImage(repo, []string{"v1"}, []*Manifest{m}, time.Unix(1, 0))
	if err == nil || !strings.Contains(err.Error(), "not in the store") {
		t.Fatalf("import with a missing layer: %v", err)
	}
	if _, err := s.Tag(repo, "v1"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a failed import left a tag")
	}
	s.PutBlob(digestOf(layer), 5, bytes.NewReader(layer))
	if err := s.ImportImage(repo, []string{"v1", "latest"}, []*Manifest{m}, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	for _, h := range append(refDigests(m), m.Digest) {
		if !s.Pinned(h) || !s.Linked(repo, h) {
			t.Errorf("%s: pinned=%v linked=%v", h, s.Pinned(h), s.Linked(repo, h))
		}
	}
	var seen []string
	s.Tags(func(r Repo, tag string, tg Tag) error {
		seen = append(seen, r.String()+":"+tag+"@"+tg.Digest.String())
		return nil
	})
	want := []string{"docker.io/library/app:latest@" + m.Digest.String(), "docker.io/library/app:v1@" + m.Digest.String()}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("Tags = %v, want %v", seen, want)
	}
}

func TestParseTagKeyWithPort(t *testing.T) {
	r, tag, ok := parseTagKey("t:localhost:5000/org/app:v1.2")
	if !ok || r.Registry != "localhost:5000" || r.Name != "org/app" || tag != "v1.2" {
		t.Errorf("got %+v %q %v", r, tag, ok)
	}
}

// importOne imports an image of one layer holding content as repo's tags.
func importOne(t *testing.T, s *Store, repo Repo, content string, tags ...string) *Manifest {
	t.Helper()
	layer := []byte(content)
	config := []byte(`{"c":"` + content + `"}`)
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digestOf(config).String() + `","size":` + strconv.Itoa(len(config)) + `},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + digestOf(layer).String() + `","size":` + strconv.Itoa(len(layer)) + `}]}`)
	m, err := ParseManifest(body, "", digestOf(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{layer, config} {
		if err := s.PutBlob(digestOf(b), int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ImportImage(repo, tags, []*Manifest{m}, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAnImportUnpinsTheImageItsTagsNoLongerName(t *testing.T) {
	s := openStore(t, t.TempDir())
	repo := Repo{Registry: "docker.io", Name: "library/app"}
	a := importOne(t, s, repo, "build 1", "v1", "stable")
	b := importOne(t, s, repo, "build 2", "v1")
	if !s.Pinned(a.Digest) || !s.Pinned(b.Digest) {
		t.Fatalf("after v1 moved, stable still names build 1: pinned 1=%v 2=%v, want both", s.Pinned(a.Digest), s.Pinned(b.Digest))
	}
	c := importOne(t, s, repo, "build 3", "stable")
	if s.Pinned(a.Digest) {
		t.Error("build 1, which no tag names any more, is still pinned")
	}
	if !s.Pinned(b.Digest) || !s.Pinned(c.Digest) {
		t.Errorf("the builds tags name: pinned 2=%v 3=%v, want both", s.Pinned(b.Digest), s.Pinned(c.Digest))
	}
	if _, err := s.Manifest(a.Digest); err != nil {
		t.Errorf("build 1 is no longer pinned but must stay pullable by digest until evicted: %v", err)
	}
	// Importing the same image again under its tag keeps its pin.
	importOne(t, s, repo, "build 3", "stable")
	if !s.Pinned(c.Digest) {
		t.Error("importing build 3 again under the tag that names it unpinned it")
	}
}
