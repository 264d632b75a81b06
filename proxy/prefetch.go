package proxy

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"golang.org/x/sync/errgroup"

	"github.com/pullcache/pullcache/cache"
)

// prefetch starts fetching what a client will ask for after a manifest
// just fetched from upstream: an image manifest's config and layers; an
// index's children for the platforms in PrefetchPlatforms (and, through
// them, their layers). Other children are not fetched ahead: each is a
// manifest GET that Docker Hub counts against the pull limit, and a
// child's layers are prefetched when the child is requested. Prefetched
// blobs are ordinary fills that clients join; at most PrefetchConcurrency
// run at once per manifest; a client never waits for them.
func (s *Server) prefetch(repo cache.Repo, up Upstream, m *cache.Manifest) {
	if !s.opts.Prefetch || len(m.Refs) == 0 {
		return
	}
	if m.IsIndex() {
		s.prefetchChildren(repo, up, m)
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		g, ctx := errgroup.WithContext(s.bgCtx)
		g.SetLimit(s.opts.PrefetchConcurrency)
		for _, d := range m.Refs {
			if s.store.HasBlob(d.Digest) {
				continue
			}
			g.Go(func() error {
				s.prefetchBlob(ctx, up, repo, d)
				return nil
			})
		}
		_ = g.Wait()
	}()
}

func (s *Server) prefetchChildren(repo cache.Repo, up Upstream, index *cache.Manifest) {
	for _, d := range index.Refs {
		if !s.wantPlatform(d.Platform) {
			continue
		}
		if _, err := s.store.Manifest(d.Digest); err == nil {
			continue
		}
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if _, err := s.fetchManifest(s.bgCtx, up, repo, d.Digest.String(), ""); err != nil {
				s.log.Debug("prefetch child manifest", "repo", repo.String(), "digest", d.Digest.String(), "err", err)
			}
		}()
	}
}

func (s *Server) wantPlatform(p *v1.Platform) bool {
	if p == nil {
		return false
	}
	for _, want := range s.opts.PrefetchPlatforms {
		if p.Satisfies(want) {
			return true
		}
	}
	return false
}

func (s *Server) prefetchBlob(ctx context.Context, up Upstream, repo cache.Repo, d cache.Descriptor) {
	f, _, err := s.store.StartFill(d.Digest, d.Size, repo.String(), s.blobSource(up, repo, d.Digest).Open)
	if err != nil {
		s.metrics.prefetch.WithLabelValues("failed").Inc()
		return
	}
	select {
	case <-f.Done():
	case <-ctx.Done():
		return
	}
	result := "ok"
	if f.Err() != nil {
		result = "failed"
	}
	s.metrics.prefetch.WithLabelValues(result).Inc()
}
