package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Manifest is a manifest or index exactly as the upstream served it.
type Manifest struct {
	Digest    v1.Hash
	MediaType string
	Bytes     []byte
	// Refs are the descriptors it references: config and layers of an image
	// manifest, child manifests of an index.
	Refs []Descriptor
}

// Descriptor is what a manifest says of one referenced object.
type Descriptor struct {
	Digest    v1.Hash      `json:"d"`
	Size      int64        `json:"s"`
	MediaType string       `json:"t,omitempty"`
	Platform  *v1.Platform `json:"p,omitempty"`
}

type manifestRecord struct {
	MediaType string       `json:"t"`
	Size      int64        `json:"s"`
	Refs      []Descriptor `json:"r"`
}

func (m *Manifest) record() manifestRecord {
	return manifestRecord{MediaType: m.MediaType, Size: int64(len(m.Bytes)), Refs: m.Refs}
}

// IsIndex reports whether the manifest is an index (manifest list).
func (m *Manifest) IsIndex() bool { return types.MediaType(m.MediaType).IsIndex() }

// ErrBadManifest says manifest bytes could not be understood.
var ErrBadManifest = errors.New("malformed manifest")

// ParseManifest builds a Manifest from exact bytes and a media type (from
// Content-Type; when that is missing or generic, the mediaType field of the
// JSON decides). It does not re-serialise: Bytes stay as given.
func ParseManifest(b []byte, contentType string, h v1.Hash) (*Manifest, error) {
	mt := contentType
	if !knownManifestType(mt) {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
		}
		mt = probe.MediaType
	}
	m := &Manifest{Digest: h, MediaType: mt, Bytes: b}
	var err error
	switch {
	case types.MediaType(mt).IsIndex():
		m.Refs, err = indexRefs(b)
	case types.MediaType(mt).IsImage():
		m.Refs, err = imageRefs(b)
	default:
		return nil, fmt.Errorf("%w: unsupported media type %q", ErrBadManifest, mt)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	return m, nil
}

// ManifestTypes are the manifest media types pullcache understands and asks
// upstreams for.
var ManifestTypes = []string{
	string(types.OCIImageIndex),
	string(types.OCIManifestSchema1),
	string(types.DockerManifestList),
	string(types.DockerManifestSchema2),
}

func knownManifestType(mt string) bool {
	for _, t := range ManifestTypes {
		if t == mt {
			return true
		}
	}
	return false
}

func imageRefs(b []byte) ([]Descriptor, error) {
	mf, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	refs := []Descriptor{descriptorOf(mf.Config)}
	for _, l := range mf.Layers {
		if len(l.URLs) > 0 {
			continue // foreign layers live elsewhere; the client fetches them there
		}
		refs = append(refs, descriptorOf(l))
	}
	return refs, nil
}

func indexRefs(b []byte) ([]Descriptor, error) {
	im, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	refs := make([]Descriptor, 0, len(im.Manifests))
	for _, d := range im.Manifests {
		refs = append(refs, descriptorOf(d))
	}
	return refs, nil
}

func descriptorOf(d v1.Descriptor) Descriptor {
	return Descriptor{Digest: d.Digest, Size: d.Size, MediaType: string(d.MediaType), Platform: d.Platform}
}
