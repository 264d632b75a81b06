package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations naming an image in an OCI layout's index.json: containerd and
// Docker 25+ write the full reference in the first; skopeo and podman write
// either a full reference or a bare tag in the second (image-spec
// annotations.md).
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// ociReader reads the images of an OCI layout, verifying every manifest and
// blob against the descriptor that references it.
type ociReader struct {
	t        *tree
	verified map[v1.Hash]Blob
	// repoTags maps a config digest to the RepoTags manifest.json gives it
	// (Docker 25+ saves carry both an OCI layout and a manifest.json).
	repoTags map[v1.Hash][]string
}

// readOCI reads the images of an OCI layout and the referrers it holds
// (see Referrer): an entry that refers to a subject and carries no name is
// a referrer only; one with a name is an image too.
func readOCI(t *tree, _ string) ([]Image, []Referrer, error) {
	b, err := t.readFile("index.json")
	if err != nil {
		return nil, nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: index.json: %v", ErrCorrupt, err)
	}
	r := &ociReader{t: t, verified: map[v1.Hash]Blob{}}
	if r.repoTags, err = dockerRepoTags(t); err != nil {
		return nil, nil, err
	}
	images := make([]Image, 0, len(idx.Manifests))
	var referrers []Referrer
	for _, d := range idx.Manifests {
		if subject, ok := fallbackSubject(d); ok {
			rs, err := r.tagReferrers(d, subject)
			if err != nil {
				return nil, nil, err
			}
			referrers = append(referrers, rs...)
			continue
		}
		img, err := r.image(d)
		if err != nil {
			return nil, nil, err
		}
		if subject, desc, ok := referrerOf(img.Manifests[0]); ok {
			referrers = append(referrers, Referrer{Subject: subject, Descriptor: desc, Manifests: img.Manifests, Blobs: img.Blobs})
			if !named(img.refs) {
				continue
			}
		}
		images = append(images, img)
	}
	return images, referrers, nil
}

// dockerRepoTags reads the RepoTags of a Docker 25+ save's manifest.json,
// by config digest; a plain OCI layout has none.
func dockerRepoTags(t *tree) (map[v1.Hash][]string, error) {
	out := map[v1.Hash][]string{}
	if !t.has("manifest.json") {
		return out, nil
	}
	m, err := readSaveManifest(t)
	if err != nil {
		return nil, err
	}
	for _, d := range m {
		if h, err := v1.NewHash("sha256:" + filepath.Base(d.Config)); err == nil {
			out[h] = append(out[h], d.RepoTags...)
		}
	}
	return out, nil
}

func (r *ociReader) image(d v1.Descriptor) (Image, error) {
	var img Image
	for _, k := range []string{annotationImageName, annotationRefName} {
		if v := d.Annotations[k]; v != "" {
			img.refs = append(img.refs, v)
		}
	}
	cfg, err := r.manifest(d, &img, 0)
	if err != nil {
		return Image{}, err
	}
	img.refs = append(img.refs, r.repoTags[cfg]...)
	return img, nil
}

// manifest reads, verifies and records the manifest d names and what it
// references; for an image manifest it returns the config digest.
func (r *ociReader) manifest(d v1.Descriptor, img *Image, depth int) (v1.Hash, error) {
	if depth > 4 {
		return v1.Hash{}, fmt.Errorf("%w: indexes nested too deep at %s", ErrCorrupt, d.Digest)
	}
	b, err := r.manifestBytes(d)
	if err != nil {
		return v1.Hash{}, err
	}
	mt := mediaTypeOf(d.MediaType, b)
	img.Manifests = append(img.Manifests, Manifest{Digest: d.Digest, MediaType: string(mt), Bytes: b})
	switch {
	case mt.IsIndex():
		return v1.Hash{}, r.children(b, img, depth)
	case mt.IsImage():
		return r.blobsOf(b, img)
	}
	return v1.Hash{}, fmt.Errorf("%w: %s: unsupported media type %q", ErrCorrupt, BlobPath(d.Digest), mt)
}

func (r *ociReader) children(b []byte, img *Image, depth int) error {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: index: %v", ErrCorrupt, err)
	}
	for _, c := range idx.Manifests {
		if _, err := r.manifest(c, img, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (r *ociReader) blobsOf(b []byte, img *Image) (v1.Hash, error) {
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if len(d.URLs) > 0 && !r.t.has(BlobPath(d.Digest)) {
			continue // a foreign layer: clients fetch it from its URLs
		}
		blob, err := r.blob(d)
		if err != nil {
			return v1.Hash{}, err
		}
		img.Blobs = append(img.Blobs, blob)
	}
	return m.Config.Digest, nil
}

// manifestBytes reads a manifest blob and checks it against d.
func (r *ociReader) manifestBytes(d v1.Descriptor) ([]byte, error) {
	name := BlobPath(d.Digest)
	b, err := r.t.readFile(name)
	if err != nil {
		return nil, err
	}
	got, size, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if err := checkDescriptor(name, d, got, size); err != nil {
		return nil, err
	}
	return b, nil
}

// blob hashes a config or layer file and checks it against d.
func (r *ociReader) blob(d v1.Descriptor) (Blob, error) {
	if b, ok := r.verified[d.Digest]; ok {
		return b, nil
	}
	name := BlobPath(d.Digest)
	f, err := r.t.open(name)
	if err != nil {
		return Blob{}, err
	}
	defer f.Close()
	got, size, err := v1.SHA256(r.t.meter.reader(f))
	if err != nil {
		return Blob{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := checkDescriptor(name, d, got, size); err != nil {
		return Blob{}, err
	}
	b := Blob{Digest: d.Digest, Size: size, path: f.Name()}
	r.verified[d.Digest] = b
	return b, nil
}

func checkDescriptor(name string, d v1.Descriptor, got v1.Hash, size int64) error {
	if got != d.Digest {
		return fmt.Errorf("%w: %s hashes to %s, not the digest its descriptor gives", ErrCorrupt, name, got)
	}
	if size != d.Size {
		return fmt.Errorf("%w: %s has %d bytes, its descriptor says %d", ErrCorrupt, name, size, d.Size)
	}
	return nil
}

// BlobPath is where an OCI image layout keeps the blob h.
func BlobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// mediaTypeOf is the descriptor's media type, or the manifest's own
// mediaType field when the descriptor has none.
func mediaTypeOf(mt types.MediaType, b []byte) types.MediaType {
	if mt != "" {
		return mt
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	_ = json.Unmarshal(b, &probe)
	return probe.MediaType
}
