package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Referrer is a manifest of an OCI layout whose subject is another
// manifest (a signature, an SBOM, an attestation), to be stored with its
// blobs and listed among the subject's referrers. Layouts record them as
// ORAS does (index.json entries whose manifest has a subject field) or as
// regclient does (the referrers tag schema: an entry named sha256-<hex>
// whose index lists the referrers of sha256:<hex>); both are read.
type Referrer struct {
	// Subject is the digest of the manifest it refers to.
	Subject v1.Hash
	// Descriptor is its entry in a referrers list: media type, digest,
	// size, artifactType and annotations.
	Descriptor v1.Descriptor
	// Manifests are the referrer's manifest (first) and, for an index,
	// those below it; Blobs are every blob they reference.
	Manifests []Manifest
	Blobs     []Blob
}

// fallbackTagRE is the referrers tag schema's tag of a sha256 subject.
var fallbackTagRE = regexp.MustCompile(`^sha256-([0-9a-f]{64})$`)

// fallbackSubject is the subject an index.json entry lists the referrers
// of, when the entry is a referrers tag schema index.
func fallbackSubject(d v1.Descriptor) (v1.Hash, bool) {
	m := fallbackTagRE.FindStringSubmatch(d.Annotations[annotationRefName])
	if m == nil || (d.MediaType != "" && !d.MediaType.IsIndex()) {
		return v1.Hash{}, false
	}
	return v1.Hash{Algorithm: "sha256", Hex: m[1]}, true
}

// referrerOf reads the subject of a manifest, and the descriptor a
// referrers list gives it (distribution-spec "Listing Referrers": the
// artifactType field, or else the config's media type; the manifest's
// annotations).
func referrerOf(m Manifest) (v1.Hash, v1.Descriptor, bool) {
	var probe struct {
		ArtifactType string            `json:"artifactType"`
		Config       *v1.Descriptor    `json:"config"`
		Subject      *v1.Descriptor    `json:"subject"`
		Annotations  map[string]string `json:"annotations"`
	}
	if json.Unmarshal(m.Bytes, &probe) != nil || probe.Subject == nil || probe.Subject.Digest.Hex == "" {
		return v1.Hash{}, v1.Descriptor{}, false
	}
	at := probe.ArtifactType
	if at == "" && probe.Config != nil {
		at = string(probe.Config.MediaType)
	}
	return probe.Subject.Digest, v1.Descriptor{
		MediaType: types.MediaType(m.MediaType), Digest: m.Digest, Size: int64(len(m.Bytes)),
		ArtifactType: at, Annotations: probe.Annotations,
	}, true
}

// tagReferrers reads a referrers tag schema index: each manifest it lists
// is read and verified with what it references.
func (r *ociReader) tagReferrers(d v1.Descriptor, subject v1.Hash) ([]Referrer, error) {
	b, err := r.manifestBytes(d)
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: referrers index %s: %v", ErrCorrupt, BlobPath(d.Digest), err)
	}
	out := make([]Referrer, 0, len(idx.Manifests))
	for _, c := range idx.Manifests {
		var img Image
		if _, err := r.manifest(c, &img, 1); err != nil {
			return nil, err
		}
		out = append(out, Referrer{Subject: subject, Descriptor: c, Manifests: img.Manifests, Blobs: img.Blobs})
	}
	return out, nil
}

// named reports whether an index.json entry carries a name an image could
// be stored under (not merely a bare tag).
func named(refs []string) bool {
	for _, s := range refs {
		if looksLikeName(s) {
			return true
		}
	}
	return false
}
