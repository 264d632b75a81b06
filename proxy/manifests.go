package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// source says where an answer came from, for the X-Pullcache header, the
// log and the metrics.
type source string

const (
	fromCache    source = "hit"
	fromUpstream source = "miss"
	// fromStale: the tag's TTL ran out and the upstream could not confirm
	// it, so the last known manifest is served.
	fromStale source = "stale"
)

func (s *Server) serveManifest(w *recorder, r *http.Request, up Upstream, req Request) error {
	repo := cache.Repo{Registry: req.Registry, Name: req.Repo}
	ctx := r.Context()
	var (
		m   *cache.Manifest
		src source
		err error
	)
	if req.ByDigest() {
		m, src, err = s.manifestByDigest(ctx, up, repo, req.Digest)
	} else {
		m, src, err = s.manifestByTag(ctx, up, repo, req.Tag)
	}
	if err != nil {
		return err
	}
	m, err = s.substitute(ctx, w, up, repo, m, parseAccept(r.Header.Values("Accept")))
	if err != nil {
		return err
	}
	w.setSource(src)
	s.metrics.cache.WithLabelValues("manifest", string(src)).Inc()
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("Content-Length", strconv.Itoa(len(m.Bytes)))
	h.Set("Etag", `"`+m.Digest.String()+`"`)
	if src == fromStale {
		h.Set("Warning", `110 pullcache "Response is stale: the upstream registry could not confirm this tag"`)
	}
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(m.Bytes)
	return err
}

// manifestByDigest answers from the cache: content by digest never changes.
// The repository must be linked to it; if it is not (another repository
// cached it), the upstream must confirm this repository has it.
func (s *Server) manifestByDigest(ctx context.Context, up Upstream, repo cache.Repo, d v1.Hash) (*cache.Manifest, source, error) {
	m, err := s.store.Manifest(d)
	if err == nil {
		if s.store.Linked(repo, d) {
			return m, fromCache, nil
		}
		if err := s.confirmManifest(ctx, up, repo, d); err != nil {
			return nil, "", err
		}
		return m, fromCache, nil
	}
	if !errors.Is(err, cache.ErrNotFound) {
		return nil, "", err
	}
	m, err = s.fetchManifest(ctx, up, repo, d.String(), "")
	return m, fromUpstream, err
}

func (s *Server) confirmManifest(ctx context.Context, up Upstream, repo cache.Repo, d v1.Hash) error {
	key := negativeKey("manifest", repo, d.String())
	if err := s.negative.lookup(key); err != nil {
		return err
	}
	ctx, cancel := s.waitContext(ctx)
	defer cancel()
	_, err := s.flight(ctx, "confirm-manifest "+repo.String()+"@"+d.String(), func(ctx context.Context) (any, error) {
		if err := s.negative.lookup(key); err != nil {
			return nil, err
		}
		if _, err := up.HeadManifest(ctx, repo.Name, d.String(), cache.ManifestTypes); err != nil {
			s.negative.remember(key, err)
			return nil, err
		}
		return nil, s.store.Link(repo, d)
	})
	return err
}

// manifestByTag serves a tag from the cache within the TTL; after it, one
// HEAD upstream decides: same digest, refresh; new digest, fetch it; gone,
// 404; upstream unreachable, rate-limiting or broken, serve the stale one.
func (s *Server) manifestByTag(ctx context.Context, up Upstream, repo cache.Repo, tag string) (*cache.Manifest, source, error) {
	t, err := s.store.Tag(repo, tag)
	if errors.Is(err, cache.ErrNotFound) {
		return s.coldTag(ctx, up, repo, tag)
	}
	if err != nil {
		return nil, "", err
	}
	cached, err := s.store.Manifest(t.Digest)
	if errors.Is(err, cache.ErrNotFound) {
		m, err := s.fetchManifest(ctx, up, repo, tag, tag)
		return m, fromUpstream, err
	}
	if err != nil {
		return nil, "", err
	}
	if s.opts.Offline || s.opts.Now().Sub(t.Confirmed) < s.opts.TagTTL {
		return cached, fromCache, nil
	}
	return s.revalidate(ctx, up, repo, tag, cached)
}

func (s *Server) revalidate(ctx context.Context, up Upstream, repo cache.Repo, tag string, cached *cache.Manifest) (*cache.Manifest, source, error) {
	ctx, cancel := s.revalidateContext(ctx)
	defer cancel()
	key := negativeKey("manifest", repo, tag)
	v, err := s.flight(ctx, "revalidate "+repo.String()+":"+tag, func(ctx context.Context) (any, error) {
		// An upstream known to be down is not asked again until it answers:
		// the cached copy is served at once.
		if err := s.negative.lookup(key); err != nil {
			return nil, err
		}
		d, err := up.HeadManifest(ctx, repo.Name, tag, cache.ManifestTypes)
		if err != nil {
			s.negative.remember(key, err)
			return nil, err
		}
		if d.Digest == cached.Digest {
			return cached, s.store.ConfirmTag(repo, tag, d.Digest, s.opts.Now())
		}
		// The tag moved. Fetch the new manifest by digest (so the tag
		// cannot move again between HEAD and GET), unless it is cached.
		if m, err := s.store.Manifest(d.Digest); err == nil && s.store.Linked(repo, d.Digest) {
			return m, s.store.ConfirmTag(repo, tag, d.Digest, s.opts.Now())
		}
		return s.fetchManifestNow(ctx, up, repo, d.Digest.String(), tag)
	})
	if err == nil {
		if m := v.(*cache.Manifest); m.Digest == cached.Digest {
			return m, fromCache, nil
		}
		return v.(*cache.Manifest), fromUpstream, nil
	}
	switch {
	case upstream.KindOf(err) == upstream.NotFound:
		if derr := s.store.DeleteTag(repo, tag); derr != nil {
			s.log.Warn("forget deleted tag", "repo", repo.String(), "tag", tag, "err", derr)
		}
		return nil, "", err
	case servesStale(err):
		s.log.Warn("serving stale tag", "repo", repo.String(), "tag", tag, "digest", cached.Digest.String(), "err", err)
		return cached, fromStale, nil
	}
	return nil, "", err
}

// fetchManifest fetches ref once however many ask at the same time, stores
// it (under tag, if given) and starts prefetching what it references.
// A 404 is remembered for NegativeTTL.
func (s *Server) fetchManifest(ctx context.Context, up Upstream, repo cache.Repo, ref, tag string) (*cache.Manifest, error) {
	key := negativeKey("manifest", repo, ref)
	if err := s.negative.lookup(key); err != nil {
		return nil, err
	}
	ctx, cancel := s.waitContext(ctx)
	defer cancel()
	v, err := s.flight(ctx, "manifest "+repo.String()+":"+ref, func(ctx context.Context) (any, error) {
		// Checked again inside the flight: a caller that looked before the
		// last flight failed may start this one after it.
		if err := s.negative.lookup(key); err != nil {
			return nil, err
		}
		m, err := s.fetchManifestNow(ctx, up, repo, ref, tag)
		s.negative.remember(key, err)
		return m, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*cache.Manifest), nil
}

func (s *Server) fetchManifestNow(ctx context.Context, up Upstream, repo cache.Repo, ref, tag string) (*cache.Manifest, error) {
	um, err := up.GetManifest(ctx, repo.Name, ref, cache.ManifestTypes)
	if err != nil {
		return nil, err
	}
	m, err := cache.ParseManifest(um.Bytes, um.MediaType, um.Digest)
	if err != nil {
		return nil, newError(http.StatusBadGateway, CodeUnavailable, "the upstream registry sent a manifest pullcache cannot read").withCause(err)
	}
	if err := s.store.PutManifest(repo, m, tag, s.opts.Now()); err != nil {
		return nil, err
	}
	s.prefetch(repo, up, m)
	return m, nil
}

// flight runs fn once per key among concurrent callers. fn runs on a
// context that outlives any one caller (bounded by UpstreamTimeout), so a
// client hanging up does not fail the others; each caller still stops
// waiting when its own context ends (see waitErr).
func (s *Server) flight(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := s.flights.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.UpstreamTimeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case res := <-ch:
		return res.Val, res.Err
	case <-ctx.Done():
		return nil, waitErr(ctx, key)
	}
}

// substitute answers the one case where the stored manifest is not what
// the client gets: a Docker manifest list asked for by a client that
// accepts Docker schema 2 images but no list type (a Docker daemon before
// 1.10) gets the list's image for the default platform, as Docker Hub
// answers such clients. Everything else is served as stored whatever the
// Accept header says: distribution-spec "Pulling manifests" requires the
// manifest with 200 OK, and Content-Type tells the client what it got.
// The reference registry (v3) does the same, an OCI index included.
func (s *Server) substitute(ctx context.Context, w *recorder, up Upstream, repo cache.Repo, m *cache.Manifest, accept acceptSet) (*cache.Manifest, error) {
	if m.MediaType != string(types.DockerManifestList) || !accept.wantsImageForList() {
		return m, nil
	}
	child, ok := platformChild(m, s.opts.DefaultPlatform)
	if !ok {
		return m, nil // nothing to substitute: the list as it is
	}
	cm, _, err := s.manifestByDigest(ctx, up, repo, child)
	if err != nil {
		return nil, err
	}
	w.annotate(slog.String("substituted", m.Digest.String()+" → "+s.opts.DefaultPlatform.String()))
	return cm, nil
}

// platformChild is the first entry of an index for platform p.
func platformChild(index *cache.Manifest, p v1.Platform) (v1.Hash, bool) {
	for _, d := range index.Refs {
		if d.Platform != nil && d.Platform.Satisfies(p) {
			return d.Digest, true
		}
	}
	return v1.Hash{}, false
}

// coldTag answers a tag not cached: fetched and stored. While the index is
// read-only (the disk is full) nothing new can be stored, but what is
// cached can be served: one HEAD says which digest the tag is, and if that
// manifest is cached it is answered, the tag recorded when the index is
// writable again.
func (s *Server) coldTag(ctx context.Context, up Upstream, repo cache.Repo, tag string) (*cache.Manifest, source, error) {
	if !s.opts.Offline && s.store.IndexReadOnly() {
		m, err := s.tagFromCache(ctx, up, repo, tag)
		if !errors.Is(err, cache.ErrNotFound) {
			return m, fromCache, err
		}
	}
	m, err := s.fetchManifest(ctx, up, repo, tag, tag)
	return m, fromUpstream, err
}

// tagFromCache resolves tag with a HEAD and adopts the cached manifest it
// names; cache.ErrNotFound when that manifest is not cached.
func (s *Server) tagFromCache(ctx context.Context, up Upstream, repo cache.Repo, tag string) (*cache.Manifest, error) {
	key := negativeKey("manifest", repo, tag)
	if err := s.negative.lookup(key); err != nil {
		return nil, err
	}
	ctx, cancel := s.waitContext(ctx)
	defer cancel()
	v, err := s.flight(ctx, "adopt "+repo.String()+":"+tag, func(ctx context.Context) (any, error) {
		d, err := up.HeadManifest(ctx, repo.Name, tag, cache.ManifestTypes)
		if err != nil {
			s.negative.remember(key, err)
			return nil, err
		}
		m, err := s.store.Manifest(d.Digest)
		if err != nil {
			return nil, err
		}
		return m, s.store.AdoptTag(repo, tag, m, s.opts.Now())
	})
	if err != nil {
		return nil, err
	}
	return v.(*cache.Manifest), nil
}
