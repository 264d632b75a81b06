package sharedstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/upstream"
)

const (
	// maxQueued bounds the bytes a blob's stream has handed its bucket
	// write and the write has not taken yet. Past it the bucket is too
	// slow for the stream, and the write is abandoned rather than the
	// stream slowed.
	maxQueued = 16 << 20
	// manifestTimeout bounds storing a manifest and its link, which goes
	// on after the request that fetched it.
	manifestTimeout = 30 * time.Second
	// commitTimeout bounds a blob's commit once its stream ended: the
	// upload of its last part and the completion. Until the end the
	// stream bounds the write (a bucket that hangs fills the queue).
	commitTimeout = 5 * time.Minute
)

// writer stores in the bucket what the upstream sends.
type writer struct {
	Upstream
	s        *Store
	registry string
}

// GetBlob tees a whole blob (from offset 0, of known size) into the
// bucket as the caller reads it. A partial one is not stored: the bucket
// checks a blob's digest, which needs all of it.
func (w *writer) GetBlob(ctx context.Context, repo string, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	body, size, err := w.Upstream.GetBlob(ctx, repo, h, offset)
	if err != nil || offset != 0 || size < 0 {
		return body, size, err
	}
	// The write outlives the request's context only as long as the stream
	// does: the tee cancels it when the stream ends short.
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	t := &tee{ReadCloser: body, size: size, chunks: make(chan []byte, 1024), stop: stop}
	go w.s.storeBlob(wctx, w.registry, repo, h, t)
	return t, size, nil
}

// GetManifest stores what the upstream sends under its digest, by tag
// too: the bytes are the same whatever name fetched them.
func (w *writer) GetManifest(ctx context.Context, repo, ref string, accept []string) (*upstream.Manifest, error) {
	m, err := w.Upstream.GetManifest(ctx, repo, ref, accept)
	if err == nil {
		go w.s.storeManifest(context.WithoutCancel(ctx), w.registry, repo, m)
	}
	return m, err
}

func (s *Store) storeManifest(ctx context.Context, registry, repo string, m *upstream.Manifest) {
	ctx, cancel := context.WithTimeout(ctx, manifestTimeout)
	defer cancel()
	d := m.Digest.String()
	_, err := s.tier.CreateObject(ctx, manifestName(d), encodeManifest(m))
	switch {
	case err == nil:
		s.metrics.wrote("manifest", "stored")
	case errors.Is(err, blobs.ErrExists):
		s.metrics.wrote("manifest", "exists")
	default:
		s.metrics.wrote("manifest", "failed")
		s.log.Warn("shared bucket: manifest not stored", "repo", repo, "digest", d, "err", err)
		return
	}
	s.link(ctx, registry, repo, d)
}

// storeBlob writes what the tee hands over to the bucket, and commits it
// when the stream reached its end. It always drains the tee's queue.
func (s *Store) storeBlob(ctx context.Context, registry, repo string, h v1.Hash, t *tee) {
	defer t.stop()
	outcome, err := s.copyBlob(ctx, h, t)
	s.metrics.wrote("blob", outcome)
	switch outcome {
	case "stored", "exists":
		s.link(ctx, registry, repo, h.String())
	case "failed", "slow":
		// Once per blob: the stream it copied went on regardless.
		s.log.Warn("shared bucket: blob not stored", "repo", repo, "digest", h.String(), "outcome", outcome, "err", err)
	}
}

func (s *Store) copyBlob(ctx context.Context, h v1.Hash, t *tee) (string, error) {
	bw, err := s.tier.Create(ctx, h, t.size)
	if err == nil {
		defer bw.Cancel()
	}
	for b := range t.chunks {
		t.queued.Add(-int64(len(b)))
		if err == nil {
			_, err = bw.Write(b)
		}
	}
	// t.reason was set before chunks closed: reading it now is safe.
	switch {
	case t.reason != "":
		return t.reason, nil
	case errors.Is(err, blobs.ErrExists):
		return "exists", nil
	case err != nil:
		return "failed", err
	}
	timer := time.AfterFunc(commitTimeout, t.stop)
	defer timer.Stop()
	switch err := bw.Commit(); {
	case err == nil:
		return "stored", nil
	case errors.Is(err, blobs.ErrExists):
		return "exists", nil
	default:
		return "failed", err
	}
}

// tee is the upstream's blob stream, copying what its reader reads into
// a bounded queue for the bucket write, never waiting on it.
type tee struct {
	io.ReadCloser
	size   int64
	chunks chan []byte
	queued atomic.Int64
	stop   context.CancelFunc

	mu     sync.Mutex
	read   int64
	ended  bool
	reason string // why the write is abandoned; "" when the blob is whole
}

func (t *tee) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	t.offer(p[:n])
	if err != nil {
		t.end("abandoned")
	}
	return n, err
}

// Close ends the stream; short of the blob's end, the write is abandoned.
func (t *tee) Close() error {
	t.end("abandoned")
	return t.ReadCloser.Close()
}

func (t *tee) offer(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || len(b) == 0 {
		return
	}
	t.read += int64(len(b))
	if t.queued.Add(int64(len(b))) > maxQueued {
		t.endLocked("slow")
		return
	}
	select {
	case t.chunks <- bytes.Clone(b):
	default:
		t.endLocked("slow")
	}
}

// end closes the queue once. A stream that delivered the whole blob ends
// it whole whatever its end looked like (EOF, or a Close right after the
// last byte); else reason says why not.
func (t *tee) end(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.read == t.size {
		reason = ""
	}
	t.endLocked(reason)
}

func (t *tee) endLocked(reason string) {
	if t.ended {
		return
	}
	t.ended, t.reason = true, reason
	if reason != "" {
		t.stop()
	}
	close(t.chunks)
}
