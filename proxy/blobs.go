package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

func (s *Server) serveBlob(w *recorder, r *http.Request, up Upstream, req Request) error {
	repo := cache.Repo{Registry: req.Registry, Name: req.Repo}
	d := req.Digest
	setBlobHeaders(w.Header(), d)
	if file, err := s.store.LendBlob(d); err == nil {
		defer file.Close()
		if err := s.authorizeBlob(r.Context(), up, repo, d); err != nil {
			return err
		}
		w.setSource(fromCache)
		s.metrics.cache.WithLabelValues("blob", string(fromCache)).Inc()
		serveContent(w, r, file.Size(), file)
		return nil
	}
	if s.opts.Offline {
		return offlineErr(CodeBlobUnknown, "blob") // no fill: there is nothing to fill from
	}
	// ctx bounds the wait for the upstream's answer; the bytes are then
	// sent on the request's own context.
	ctx, cancel := s.waitContext(r.Context())
	defer cancel()
	if r.Method == http.MethodHead {
		return s.headColdBlob(ctx, w, up, repo, d)
	}
	f, rd, started, err := s.openFill(ctx, r, up, repo, d)
	if err != nil {
		return err
	}
	defer rd.Close()
	src := fromUpstream
	if !started && f.Complete() {
		src = fromCache // verified, still being committed: no upstream byte is awaited
	}
	w.setSource(src)
	s.metrics.cache.WithLabelValues("blob", string(src)).Inc()
	return streamFill(w, r, f, rd)
}

// openFill joins or starts d's fill and opens a reader of it. A fill that
// had ended by then (the blob was committed when StartFill looked, or
// every earlier reader had left) opens the committed file only now: if an
// eviction pass deleted the blob in between, it is a miss again and is
// fetched as a cold GET would fetch it, instead of failing.
func (s *Server) openFill(ctx context.Context, r *http.Request, up Upstream, repo cache.Repo, d v1.Hash) (*cache.Fill, *cache.FillReader, bool, error) {
	for attempt := 0; ; attempt++ {
		if s.beforeJoin != nil {
			s.beforeJoin()
		}
		f, started, err := s.joinFill(ctx, up, repo, d)
		if err != nil {
			return nil, nil, false, err
		}
		if s.beforeRead != nil {
			s.beforeRead(f)
		}
		rd, err := newFillReader(r, f)
		// Twice at most: a blob evicted again right after its refetch is
		// a miss for this request (404), not a loop.
		if errors.Is(err, cache.ErrNotFound) && attempt < 2 {
			continue
		}
		if err != nil {
			return nil, nil, false, err
		}
		return f, rd, started, nil
	}
}

// newFillReader opens a reader of f for r. A range of a blob of unknown
// size waits for the fill to finish first.
func newFillReader(r *http.Request, f *cache.Fill) (*cache.FillReader, error) {
	if f.Size() < 0 && r.Header.Get("Range") != "" {
		select {
		case <-f.Done():
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
		if err := f.Err(); err != nil {
			return nil, fillError(err, time.Now())
		}
	}
	return f.NewReader(r.Context())
}

// plainGET: a GET of the whole blob, with nothing for ServeContent to decide.
func plainGET(r *http.Request) bool {
	h := r.Header
	return r.Method == http.MethodGet && h.Get("Range") == "" && h.Get("If-None-Match") == "" &&
		h.Get("If-Match") == "" && h.Get("If-Modified-Since") == "" && h.Get("If-Unmodified-Since") == ""
}

func setBlobHeaders(h http.Header, d v1.Hash) {
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	// Content never changes under a digest: let clients and proxies keep it.
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000, immutable")
}

// authorizeBlob checks that repo may serve d: linked to it, or confirmed by
// the upstream. Knowing a digest is not enough to read it (MISSION.md).
func (s *Server) authorizeBlob(ctx context.Context, up Upstream, repo cache.Repo, d v1.Hash) error {
	if s.store.Linked(repo, d) {
		return nil
	}
	key := negativeKey("blob", repo, d.String())
	if err := s.negative.lookup(key); err != nil {
		return err
	}
	ctx, cancel := s.waitContext(ctx)
	defer cancel()
	_, err := s.flight(ctx, "confirm-blob "+repo.String()+"@"+d.String(), func(ctx context.Context) (any, error) {
		if err := s.negative.lookup(key); err != nil {
			return nil, err
		}
		if _, err := up.HeadBlob(ctx, repo.Name, d); err != nil {
			s.negative.remember(key, err)
			return nil, err
		}
		return nil, s.store.Link(repo, d)
	})
	return err
}

// headColdBlob answers HEAD for a blob that is not cached: from its fill
// when one runs (size and digest are known), else from the upstream's
// HEAD, without fetching the bytes.
func (s *Server) headColdBlob(ctx context.Context, w *recorder, up Upstream, repo cache.Repo, d v1.Hash) error {
	if f, ok := s.store.InFlight(d); ok {
		if done, err := s.headFromFill(ctx, w, up, repo, f); done || err != nil {
			return err
		}
	}
	key := negativeKey("blob", repo, d.String())
	if err := s.negative.lookup(key); err != nil {
		return err
	}
	size, err := up.HeadBlob(ctx, repo.Name, d)
	if err != nil {
		s.negative.remember(key, err)
		return err
	}
	w.setSource(fromUpstream)
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	return nil
}

// headFromFill answers HEAD from a fill in flight once its source has
// answered; done is false when the fill does not know the size.
func (s *Server) headFromFill(ctx context.Context, w *recorder, up Upstream, repo cache.Repo, f *cache.Fill) (done bool, err error) {
	d := f.Digest()
	if f.Origin != repo.String() {
		if err := s.authorizeBlob(ctx, up, repo, d); err != nil {
			return false, err
		}
	}
	select {
	case <-f.Ready():
	case <-ctx.Done():
		return false, waitErr(ctx, "the upstream's answer for blob "+d.String())
	}
	if err := f.Err(); err != nil {
		return false, fillError(err, time.Now())
	}
	size := f.Size()
	if size < 0 {
		size = s.knownSize(d)
	}
	if size < 0 {
		return false, nil
	}
	w.setSource(fromUpstream)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	return true, nil
}

// joinFill returns the fill of d that repo may read, starting one if none
// runs. A fill started for another repository is joined only once repo is
// known to have the blob; if that fill failed to open, repo tries its own.
func (s *Server) joinFill(ctx context.Context, up Upstream, repo cache.Repo, d v1.Hash) (*cache.Fill, bool, error) {
	if err := s.negative.lookup(negativeKey("blob", repo, d.String())); err != nil {
		return nil, false, err
	}
	for attempt := 0; ; attempt++ {
		f, started, err := s.store.StartFill(d, s.knownSize(d), repo.String(), s.blobSource(up, repo, d))
		if err != nil {
			return nil, false, err
		}
		if started {
			s.metrics.fills.Inc()
		}
		if !started && f.Origin != repo.String() {
			if err := s.authorizeBlob(ctx, up, repo, d); err != nil {
				return nil, false, err
			}
		}
		select {
		case <-f.Ready():
		case <-ctx.Done():
			return nil, false, waitErr(ctx, "the upstream's answer for blob "+d.String())
		}
		err = f.Err()
		if err == nil {
			if started {
				if lerr := s.store.Link(repo, d); lerr != nil {
					s.log.Warn("link blob", "repo", repo.String(), "digest", d.String(), "err", lerr)
				}
			}
			return f, started, nil
		}
		if started || f.Origin == repo.String() || attempt > 0 {
			return nil, false, fillError(err, time.Now())
		}
	}
}

func (s *Server) knownSize(d v1.Hash) int64 {
	if n, err := s.store.BlobSize(d); err == nil {
		return n
	}
	return -1
}

// blobSource opens the blob upstream for a fill. An upstream 404 is
// remembered (before the fill ends, so no request can start another fill
// in between) and marked as a miss for the cache, which then does not warn.
func (s *Server) blobSource(up Upstream, repo cache.Repo, d v1.Hash) cache.Source {
	key := negativeKey("blob", repo, d.String())
	return func(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
		// Checked again here: a request that looked before the last fill
		// failed may start this one after it.
		err := s.negative.lookup(key)
		var body io.ReadCloser
		var size int64
		if err == nil {
			body, size, err = up.GetBlob(ctx, repo.Name, d, offset)
			s.negative.remember(key, err)
		}
		if upstream.KindOf(err) == upstream.NotFound {
			err = fmt.Errorf("%w: %w", cache.ErrSourceNotFound, err)
		}
		return body, size, err
	}
}

// streamFill sends a blob from rd while its fill f grows. With a known
// size, http.ServeContent handles Range (waiting for bytes not there yet).
// If the fill fails after headers went out, the connection is aborted so
// the client sees a broken transfer, never a complete-looking short one.
func streamFill(w *recorder, r *http.Request, f *cache.Fill, rd *cache.FillReader) error {
	var err error
	rc := http.NewResponseController(w)
	rd.BeforeWait = func() { _ = rc.Flush() }
	switch {
	case f.Size() >= 0 && plainGET(r):
		// The common case, a whole blob: sent with sendfile as it grows.
		w.Header().Set("Content-Length", strconv.FormatInt(f.Size(), 10))
		w.WriteHeader(http.StatusOK)
		_, err = rd.WriteTo(w)
	case f.Size() >= 0:
		// Range and conditional requests: ServeContent waits for bytes
		// not there yet through the reader's Read.
		serveContent(w, r, f.Size(), rd)
	case r.Method != http.MethodHead:
		_, err = rd.WriteTo(w)
	}
	if rd.Failed != nil || err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}
