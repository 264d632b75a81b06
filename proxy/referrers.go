package proxy

import (
	"context"
	"errors"
	"net/http"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/cache"
)

// serveReferrers answers the referrers API (distribution-spec 1.1,
// "Listing Referrers"): always 200 with an OCI image index of the
// manifests whose subject is the digest, filtered by artifactType when
// asked (and then saying so in OCI-Filters-Applied). The list is fetched
// from the upstream (its referrers API, or the referrers tag schema's tag
// when it has none) and kept like a tag list: served for the tag TTL,
// then fetched again; served stale with a Warning when the upstream
// cannot answer; served from the cache offline. The referrers themselves
// are ordinary manifests and blobs, pulled through the mirror.
func (s *Server) serveReferrers(w *recorder, r *http.Request, up Upstream, req Request) error {
	repo := cache.Repo{Registry: req.Registry, Name: req.Repo}
	refs, src, err := s.referrers(r.Context(), up, repo, req.Digest)
	if err != nil {
		return err
	}
	w.setSource(src)
	s.metrics.cache.WithLabelValues("referrers", string(src)).Inc()
	h := w.Header()
	h.Set("Content-Type", string(types.OCIImageIndex))
	if len(req.ArtifactTypes) > 0 {
		refs = filterArtifactTypes(refs, req.ArtifactTypes)
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	if src == fromStale {
		h.Set("Warning", `110 pullcache "Response is stale: the upstream registry could not be asked for referrers"`)
	}
	return writeJSON(w, r, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: refs})
}

// referrers is the referrers list of subject in repo: cached within the
// TTL (or offline), else fetched once however many ask, else the stale
// one when the upstream is unreachable, rate-limiting or broken.
func (s *Server) referrers(ctx context.Context, up Upstream, repo cache.Repo, subject v1.Hash) ([]v1.Descriptor, source, error) {
	cached, fetched, cerr := s.store.Referrers(repo, subject)
	if cerr == nil && (s.opts.Offline || s.opts.Now().Sub(fetched) < s.opts.TagTTL) {
		return cached, fromCache, nil
	}
	if s.opts.Offline {
		// Nothing imported or fetched names this subject: no referrers known.
		return []v1.Descriptor{}, fromCache, nil
	}
	ctx, cancel := s.waitFor(ctx, cerr == nil)
	defer cancel()
	v, err := s.flight(ctx, "referrers "+repo.String()+"@"+subject.String(), func(ctx context.Context) (any, error) {
		rf, err := up.Referrers(ctx, repo.Name, subject)
		if err != nil {
			return nil, err
		}
		s.log.Debug("referrers fetched", "repo", repo.String(), "subject", subject.String(), "source", rf.Source, "count", len(rf.Manifests))
		return rf.Manifests, s.store.PutReferrers(repo, subject, rf.Manifests, s.opts.Now())
	})
	if err == nil {
		return v.([]v1.Descriptor), fromUpstream, nil
	}
	switch {
	case cerr == nil && servesStale(err):
		s.log.Warn("serving stale referrers", "repo", repo.String(), "subject", subject.String(), "err", err)
		return cached, fromStale, nil
	case cerr != nil && !errors.Is(cerr, cache.ErrNotFound):
		return nil, "", errors.Join(err, cerr)
	}
	return nil, "", err
}

// filterArtifactTypes keeps the descriptors of the given artifact types.
func filterArtifactTypes(refs []v1.Descriptor, artifactTypes []string) []v1.Descriptor {
	out := []v1.Descriptor{}
	for _, d := range refs {
		if slices.Contains(artifactTypes, d.ArtifactType) {
			out = append(out, d)
		}
	}
	return out
}
