package proxy

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/test/tmpfs"
)

// fillDisk fills the filesystem of path as another process would.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	if err := tmpfs.Fill(path); err != nil {
		t.Fatal(err)
	}
}

// TestACachedImageUnderANewTagIsServedOnAFullDisk: with the index
// read-only, a tag never pulled before whose image is cached (under
// another repository) is answered 200 after one HEAD upstream, its blobs
// too; a tag whose manifest is not cached is 503 naming the disk; the tag
// is written once the index is writable again.
func TestACachedImageUnderANewTagIsServedOnAFullDisk(t *testing.T) {
	mnt := tmpfs.Mount(t, 48<<20)
	up := newFakeUpstream(t)
	img := randomImage(t, 4096, 2)
	digest := up.push("library/app:v1", img)
	up.push("library/copy:latest", img)
	up.push("library/new:v1", randomImage(t, 4096, 1))
	dir := filepath.Join(mnt, "data")
	e := newEnvIn(t, up, dir, withPrefetch(false), func(_ *Options, co *cache.Options) { co.Housekeeping = 20 * time.Millisecond })
	manifest, _ := img.RawManifest()
	config, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	blobs := []string{config.String()}
	layers, _ := img.Layers()
	for _, l := range layers {
		blobs = append(blobs, mustDigest(t, l))
	}
	if r := e.get("/v2/library/app/manifests/v1", "Accept", acceptAll); r.status != http.StatusOK {
		t.Fatalf("warm manifest: %d", r.status)
	}
	for _, b := range blobs {
		if r := e.get("/v2/library/app/blobs/" + b); r.status != http.StatusOK {
			t.Fatalf("warm blob %s: %d", b, r.status)
		}
	}

	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	if !e.store.IndexReadOnly() {
		t.Fatal("the index is writable on a full disk")
	}
	r := e.get("/v2/library/copy/manifests/latest", "Accept", acceptAll)
	if r.status != http.StatusOK {
		t.Fatalf("a cached image under a new tag on a full disk: status %d %s", r.status, r.body)
	}
	if !bytes.Equal(r.body, manifest) {
		t.Error("the manifest served is not the upstream's bytes")
	}
	if got := r.header.Get("Docker-Content-Digest"); got != digest.String() {
		t.Errorf("Docker-Content-Digest %q, want %s", got, digest)
	}
	if n := up.calls("HEAD manifests latest"); n != 1 {
		t.Errorf("upstream HEADs of the new tag: %d, want 1", n)
	}
	if n := up.calls("GET manifests latest"); n != 0 {
		t.Errorf("upstream GETs of the new tag: %d, want 0 (its digest is cached)", n)
	}
	for _, b := range blobs {
		if r := e.get("/v2/library/copy/blobs/" + b); r.status != http.StatusOK {
			t.Errorf("blob %s of the new tag on a full disk: %d", b, r.status)
		}
	}
	r = e.get("/v2/library/new/manifests/v1", "Accept", acceptAll)
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("an image not cached on a full disk: status %d, want 503", r.status)
	}
	if !strings.Contains(string(r.body), "disk") {
		t.Errorf("an image not cached on a full disk: %s, want the disk named", r.body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for e.store.IndexReadOnly() {
		if time.Now().After(deadline) {
			t.Fatal("the index is still read-only 10s after space returned")
		}
		<-tick.C
	}
	e.stop()
	store, err := cache.Open(cache.Options{Dir: dir, Housekeeping: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tag, err := store.Tag(cache.Repo{Registry: "docker.io", Name: "library/copy"}, "latest")
	if err != nil {
		t.Fatalf("the tag adopted on the full disk was not written once space returned: %v", err)
	}
	if tag.Digest != digest {
		t.Errorf("tag written as %s, want %s", tag.Digest, digest)
	}
	if !store.Linked(cache.Repo{Registry: "docker.io", Name: "library/copy"}, digest) {
		t.Error("the new repository was not linked to the manifest")
	}
}

// TestAColdBlobOnAFullDiskIsALocalFailure: a cold blob that cannot be
// stored is answered 503 naming the mirror's disk, not the upstream, and
// is not remembered: the first request after space returns fetches it.
func TestAColdBlobOnAFullDiskIsALocalFailure(t *testing.T) {
	mnt := tmpfs.Mount(t, 48<<20)
	up := newFakeUpstream(t)
	img := randomImage(t, 1<<20, 1)
	up.push("library/app:v1", img)
	layers, _ := img.Layers()
	path := "/v2/library/app/blobs/" + mustDigest(t, layers[0])
	e := newEnvIn(t, up, filepath.Join(mnt, "data"), withPrefetch(false), withNegativeTTL(time.Minute))
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)

	r := e.get(path)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("a cold blob on a full disk: status %d, want 503", r.status)
	}
	if msg := string(r.body); !strings.Contains(msg, "the mirror's disk") || strings.Contains(msg, "upstream registry") {
		t.Errorf("a cold blob on a full disk: %s, want the mirror's disk named, not the upstream", msg)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before := up.calls("GET blobs")
	if r := e.get(path); r.status != http.StatusOK {
		t.Fatalf("the first request after space returned: status %d %s", r.status, r.body)
	}
	if n := up.calls("GET blobs") - before; n != 1 {
		t.Errorf("upstream blob GETs for the first request after space returned: %d, want 1", n)
	}
}
