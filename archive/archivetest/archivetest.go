// Package archivetest builds image archives for tests without a Docker
// engine: hand-made legacy `docker save` tarballs (uncompressed layer.tar
// files, symlinked layers, saves by image ID), Docker 25+ saves with an OCI
// layout inside, OCI layouts written by go-containerregistry, compressed
// variants, and malicious archives.
package archivetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Entry is one tar entry: a file (Body), a directory, a symlink or hard
// link (Link), or a device (Type).
type Entry struct {
	Name string
	Body []byte
	Type byte
	Link string
	// Size, when not zero, is the size the header claims (to make a header
	// that promises more than the body).
	Size int64
}

// File is a regular file entry.
func File(name string, body []byte) Entry { return Entry{Name: name, Body: body, Type: tar.TypeReg} }

// Tar writes the entries as a tar archive.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Link, Mode: 0o644, Size: int64(len(e.Body))}
		if e.Type == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if e.Type != tar.TypeReg {
			hdr.Size = 0
		}
		if e.Type == tar.TypeChar || e.Type == tar.TypeBlock {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.Body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Compress compresses b with gzip, xz or zstd ("" or "none": unchanged).
func Compress(t testing.TB, b []byte, how string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch how {
	case "", "none":
		return b
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	default:
		t.Fatalf("Compress: unknown compression %q", how)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Layer is an uncompressed layer tar holding the files.
func Layer(t testing.TB, files ...string) []byte {
	t.Helper()
	var entries []Entry
	for _, f := range files {
		entries = append(entries, File(f, []byte("content of "+f)))
	}
	return Tar(t, entries...)
}

// Digest is the sha256 of b.
func Digest(b []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}
}

// LegacyImage describes one image of a hand-made legacy save.
type LegacyImage struct {
	RepoTags []string
	// Layers are uncompressed layer tars.
	Layers [][]byte
	// LinkLayers makes layer i (key) a symlink to the layer.tar of layer
	// value, as old Docker did for identical layers.
	LinkLayers map[int]int
}

// Config returns the image's config JSON: its digest is the image ID.
func (im LegacyImage) Config() []byte {
	cfg := v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers"}}
	for _, l := range im.Layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, Digest(l))
	}
	b, _ := json.Marshal(cfg)
	return b
}

// LegacySave returns the entries of a legacy `docker save` of the images:
// manifest.json, repositories, <id>.json and <v1-id>/{VERSION,json,layer.tar}.
func LegacySave(images ...LegacyImage) []Entry {
	var entries []Entry
	type desc struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []desc
	for n, im := range images {
		cfg := im.Config()
		d := desc{Config: Digest(cfg).Hex + ".json", RepoTags: im.RepoTags}
		entries = append(entries, File(d.Config, cfg))
		for i, l := range im.Layers {
			dir := fmt.Sprintf("%064x", n*100+i+1) // stands in for the v1 ID
			entries = append(entries, Entry{Name: dir + "/", Type: tar.TypeDir},
				File(dir+"/VERSION", []byte("1.0")), File(dir+"/json", []byte(`{"id":"`+dir+`"}`)))
			if to, ok := im.LinkLayers[i]; ok {
				target := fmt.Sprintf("../%064x/layer.tar", n*100+to+1)
				entries = append(entries, Entry{Name: dir + "/layer.tar", Type: tar.TypeSymlink, Link: target})
			} else {
				entries = append(entries, File(dir+"/layer.tar", l))
			}
			d.Layers = append(d.Layers, dir+"/layer.tar")
		}
		manifest = append(manifest, d)
	}
	mb, _ := json.Marshal(manifest)
	return append(entries, File("manifest.json", mb), File("repositories", []byte("{}")))
}

// OCILayoutDir writes an OCI layout with go-containerregistry's layout
// package: a random single-platform image named by ref (the
// org.opencontainers.image.ref.name annotation; "" for none) and, when
// index is set, a random two-platform index named index. It returns the
// directory and the digests of the index.json entries.
func OCILayoutDir(t testing.TB, ref, index string) (string, []v1.Hash) {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	var opts []layout.Option
	if ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		t.Fatal(err)
	}
	h, _ := img.Digest()
	digests := []v1.Hash{h}
	if index != "" {
		idx := TwoPlatformIndex(t)
		if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": index})); err != nil {
			t.Fatal(err)
		}
		h, _ := idx.Digest()
		digests = append(digests, h)
	}
	return dir, digests
}

// TwoPlatformIndex is a random OCI index of a linux/amd64 and a
// linux/arm64 image.
func TwoPlatformIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// TarDir returns the regular files under dir as tar entries (an OCI layout
// directory as an oci-archive).
func TarDir(t testing.TB, dir string) []Entry {
	t.Helper()
	var entries []Entry
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		entries = append(entries, File(filepath.ToSlash(rel), b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// DockerOCISave returns a Docker 25+ save: an OCI layout whose index.json
// names the image only by the io.containerd.image.name annotation, plus a
// manifest.json with RepoTags and blob paths. It returns the entries and
// the image's manifest digest.
func DockerOCISave(t testing.TB, repoTag string) ([]Entry, v1.Hash) {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": repoTag})); err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	layers, _ := img.Layers()
	var paths []string
	for _, l := range layers {
		d, _ := l.Digest()
		paths = append(paths, "blobs/sha256/"+d.Hex)
	}
	mb, _ := json.Marshal([]map[string]any{{"Config": "blobs/sha256/" + cfg.Hex, "RepoTags": []string{repoTag}, "Layers": paths}})
	h, _ := img.Digest()
	return append(TarDir(t, dir), File("manifest.json", mb)), h
}

// MediaTypeOf returns an image's manifest media type (for assertions).
func MediaTypeOf(img v1.Image) types.MediaType {
	mt, _ := img.MediaType()
	return mt
}

// WriteFile writes b to a new file in a temporary directory.
func WriteFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
