package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Referrers is what a registry knows of the manifests that name a subject
// (OCI distribution 1.1, "Listing Referrers"): signatures, SBOMs,
// attestations.
type Referrers struct {
	// Manifests are the referrers' descriptors (media type, digest, size,
	// artifactType, annotations), unfiltered.
	Manifests []v1.Descriptor
	// Source says where they came from: "api" (the referrers API), "tag"
	// (the referrers tag schema's sha256-<hex> tag of a registry without
	// the API) or "none" (neither).
	Source string
}

// maxReferrerPages bounds the pages of a referrers list that are followed.
const maxReferrerPages = 20

// Referrers lists the referrers of subject in repo: from the referrers
// API, or, when the registry answers 404 there (it has no such API), from
// the referrers tag schema's tag; neither gives an empty list. Only other
// failures are errors.
func (r *Registry) Referrers(ctx context.Context, repo string, subject v1.Hash) (*Referrers, error) {
	manifests, err := r.referrersAPI(ctx, repo, subject)
	if err == nil {
		return &Referrers{Manifests: manifests, Source: "api"}, nil
	}
	if KindOf(err) != NotFound {
		return nil, err
	}
	m, err := r.GetManifest(ctx, repo, FallbackTag(subject), []string{string(types.OCIImageIndex)})
	switch {
	case KindOf(err) == NotFound:
		return &Referrers{Manifests: []v1.Descriptor{}, Source: "none"}, nil
	case err != nil:
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(m.Bytes))
	if err != nil {
		return nil, r.wrap("GET referrers tag", repo, "", fmt.Errorf("%w: referrers tag %s is not an index: %v", errInvalid, FallbackTag(subject), err))
	}
	return &Referrers{Manifests: usableDescriptors(idx.Manifests), Source: "tag"}, nil
}

// FallbackTag is the referrers tag schema's tag for a subject:
// <alg>-<hex>, as distribution-spec "Referrers Tag Schema" defines it.
func FallbackTag(subject v1.Hash) string {
	alg, hex := subject.Algorithm, subject.Hex
	if len(alg) > 32 {
		alg = alg[:32]
	}
	if len(hex) > 64 {
		hex = hex[:64]
	}
	return alg + "-" + hex
}

// referrersAPI fetches every page of the referrers API's answer.
func (r *Registry) referrersAPI(ctx context.Context, repo string, subject v1.Hash) ([]v1.Descriptor, error) {
	return allPages(apiPath(repo, "referrers", subject.String()), maxReferrerPages, func(pageURL string) ([]v1.Descriptor, string, error) {
		return r.referrersPage(ctx, repo, pageURL)
	})
}

func (r *Registry) referrersPage(ctx context.Context, repo, pageURL string) ([]v1.Descriptor, string, error) {
	header := http.Header{"Accept": {string(types.OCIImageIndex)}}
	resp, err := r.do(ctx, http.MethodGet, repo, pageURL, header, http.StatusOK)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return nil, "", r.wrap("GET referrers", repo, "", err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil || len(b) > maxManifestSize {
		return nil, "", r.wrap("GET referrers", repo, "", fmt.Errorf("%w: referrers list is not an index of at most %d bytes", errInvalid, maxManifestSize))
	}
	return usableDescriptors(idx.Manifests), nextLink(resp), nil
}

// usableDescriptors drops entries a client could not fetch: no digest or
// no media type.
func usableDescriptors(in []v1.Descriptor) []v1.Descriptor {
	out := make([]v1.Descriptor, 0, len(in))
	for _, d := range in {
		if d.Digest.Hex != "" && d.MediaType != "" && !strings.ContainsAny(string(d.MediaType), " \r\n") {
			out = append(out, d)
		}
	}
	return out
}
