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
	// The one call into the store: it lends the stored file, or joins the
	// fill in flight, or starts one, and retries when an eviction races it.
	b, err := s.store.Blob(r.Context(), cache.BlobRequest{
		Digest: d, Repo: repo, Source: s.blobSource(up, repo, d),
		// Bounds the wait for the upstream's answer; the bytes are then
		// sent on the request's own context.
		Wait:       s.opts.ResponseTimeout,
		StoredOnly: s.opts.Offline, // no fill: there is nothing to fill from
		SizeOnly:   r.Method == http.MethodHead,
		Ranged:     r.Header.Get("Range") != "",
	})
	switch {
	case errors.Is(err, cache.ErrNotFound) && s.opts.Offline:
		return offlineErr(CodeBlobUnknown, "blob")
	case errors.Is(err, cache.ErrNotFound) && r.Method == http.MethodHead:
		return s.headColdBlob(r.Context(), w, up, repo, d)
	case err != nil:
		return blobError(err, d)
	}
	defer b.Close()
	if b.Started() {
		s.metrics.fills.Inc()
	} else if !b.Stored() {
		s.metrics.joins.Inc()
	}
	src := fromUpstream
	if b.Cached() {
		src = fromCache // stored, or verified and still being committed: no upstream byte is awaited
	}
	w.setSource(src)
	switch {
	case b.Stored():
		s.metrics.cache.WithLabelValues("blob", string(src)).Inc()
		serveContent(w, r, b.Size(), b)
		return nil
	case !b.Readable(): // a HEAD answered by a fill in flight
		w.Header().Set("Content-Length", strconv.FormatInt(b.Size(), 10))
		return nil
	}
	s.metrics.cache.WithLabelValues("blob", string(src)).Inc()
	return streamFill(w, r, b)
}

// blobError is the wire error of a failed blob request: a wait for the
// upstream that ran out, a failed fill (fillError), or the error as it is.
func blobError(err error, d v1.Hash) error {
	var we *cache.WaitError
	var fe *cache.FillError
	switch {
	case errors.As(err, &fe):
		return fillError(fe.Err, time.Now())
	case errors.As(err, &we):
		return waitErrOf(we.Err, "the upstream's answer for blob "+d.String())
	}
	return err
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

// blobSource is a blob's upstream side for the store: its bytes, the
// confirmation that a repository has it, and the refusals remembered.
type blobSource struct {
	s    *Server
	up   Upstream
	repo cache.Repo
	d    v1.Hash
	key  string // the negative cache's
}

func (s *Server) blobSource(up Upstream, repo cache.Repo, d v1.Hash) blobSource {
	return blobSource{s: s, up: up, repo: repo, d: d, key: negativeKey("blob", repo, d.String())}
}

// Confirm asks the upstream whether repo has d, when the store has d but
// no link of it to repo: knowing a digest is not enough to read it
// (MISSION.md). The store links it on success.
func (b blobSource) Confirm(ctx context.Context) error {
	if err := b.s.negative.lookup(b.key); err != nil {
		return err
	}
	ctx, cancel := b.s.waitContext(ctx)
	defer cancel()
	_, err := b.s.flight(ctx, "confirm-blob "+b.repo.String()+"@"+b.d.String(), func(ctx context.Context) (any, error) {
		if err := b.s.negative.lookup(b.key); err != nil {
			return nil, err
		}
		_, err := b.up.HeadBlob(ctx, b.repo.Name, b.d)
		b.s.negative.remember(b.key, err)
		return nil, err
	})
	return err
}

// Refused is the upstream's recent "not found" for repo's d, if any.
func (b blobSource) Refused() error { return b.s.negative.lookup(b.key) }

// Open opens the blob upstream for a fill. An upstream 404 is remembered
// (before the fill ends, so no request can start another fill in between)
// and marked as a miss for the cache, which then does not warn.
func (b blobSource) Open(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
	// Checked again here: a request that looked before the last fill
	// failed may start this one after it.
	err := b.s.negative.lookup(b.key)
	var body io.ReadCloser
	var size int64
	if err == nil {
		body, size, err = b.up.GetBlob(ctx, b.repo.Name, b.d, offset)
		b.s.negative.remember(b.key, err)
	}
	if upstream.KindOf(err) == upstream.NotFound {
		err = fmt.Errorf("%w: %w", cache.ErrSourceNotFound, err)
	}
	return body, size, err
}

// headColdBlob answers HEAD for a blob neither stored nor being filled
// with a known size: from the upstream's HEAD, without fetching the bytes.
func (s *Server) headColdBlob(ctx context.Context, w *recorder, up Upstream, repo cache.Repo, d v1.Hash) error {
	ctx, cancel := s.waitContext(ctx)
	defer cancel()
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

// streamFill sends a blob from b while its fill grows. With a known
// size, http.ServeContent handles Range (waiting for bytes not there yet).
// If the fill fails after headers went out, the connection is aborted so
// the client sees a broken transfer, never a complete-looking short one.
func streamFill(w *recorder, r *http.Request, b *cache.Blob) error {
	var err error
	rc := http.NewResponseController(w)
	b.OnWait(func() { _ = rc.Flush() })
	size := b.Size()
	switch {
	case size >= 0 && plainGET(r):
		// The common case, a whole blob: sent with sendfile as it grows.
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, err = b.WriteTo(w)
	case size >= 0:
		// Range and conditional requests: ServeContent waits for bytes
		// not there yet through the reader's Read.
		serveContent(w, r, size, b)
	case r.Method != http.MethodHead:
		_, err = b.WriteTo(w)
	}
	if b.Failed() != nil || err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}
