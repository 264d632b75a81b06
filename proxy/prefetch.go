package proxy

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/pullcache/pullcache/cache"
)

// prefetch starts fetching the blobs of an image manifest just fetched from
// upstream: the client will ask for them next, and a fill it joins is
// already on its way. At most PrefetchConcurrency run at once per manifest.
// It never makes a client wait. An index's children are not prefetched:
// each is a manifest GET that Docker Hub counts against the pull limit;
// a child's blobs are prefetched when the child is requested.
func (s *Server) prefetch(repo cache.Repo, up Upstream, m *cache.Manifest) {
	if !s.opts.Prefetch || m.IsIndex() || len(m.Refs) == 0 {
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

func (s *Server) prefetchBlob(ctx context.Context, up Upstream, repo cache.Repo, d cache.Descriptor) {
	f, _, err := s.store.StartFill(d.Digest, d.Size, repo.String(), s.blobSource(up, repo, d.Digest))
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
