package sharedstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/cache/blobs/s3"
	"github.com/pullcache/pullcache/upstream"
)

// reader answers from the bucket what a link lets the repository read,
// and passes everything else inward.
type reader struct {
	Upstream
	s        *Store
	registry string
}

func (r *reader) GetBlob(ctx context.Context, repo string, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	if r.skip("blob") {
		return r.Upstream.GetBlob(ctx, repo, h, offset)
	}
	body, size, err := r.s.open(ctx, h, offset)
	if err != nil {
		r.missed(ctx, "blob", err)
		return r.Upstream.GetBlob(ctx, repo, h, offset)
	}
	confirm := func() error { _, err := r.Upstream.HeadBlob(ctx, repo, h); return err }
	if !r.admit(ctx, "blob", repo, h.String(), confirm) {
		body.Close()
		return r.Upstream.GetBlob(ctx, repo, h, offset)
	}
	return body, size, nil
}

func (r *reader) HeadBlob(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	if r.skip("blob") {
		return r.Upstream.HeadBlob(ctx, repo, h)
	}
	info, err := r.s.stat(ctx, h)
	if err != nil {
		r.missed(ctx, "blob", err)
		return r.Upstream.HeadBlob(ctx, repo, h)
	}
	confirm := func() error { _, err := r.Upstream.HeadBlob(ctx, repo, h); return err }
	if !r.admit(ctx, "blob", repo, h.String(), confirm) {
		return r.Upstream.HeadBlob(ctx, repo, h)
	}
	return info.Size, nil
}

// GetManifest answers a manifest by digest from the bucket; by tag it
// goes inward, where the tag's owner revalidates it.
func (r *reader) GetManifest(ctx context.Context, repo, ref string, accept []string) (*upstream.Manifest, error) {
	if m := r.manifest(ctx, repo, ref, accept); m != nil {
		return m, nil
	}
	return r.Upstream.GetManifest(ctx, repo, ref, accept)
}

func (r *reader) HeadManifest(ctx context.Context, repo, ref string, accept []string) (upstream.Descriptor, error) {
	if m := r.manifest(ctx, repo, ref, accept); m != nil {
		return upstream.Descriptor{Digest: m.Digest, MediaType: m.MediaType, Size: int64(len(m.Bytes))}, nil
	}
	return r.Upstream.HeadManifest(ctx, repo, ref, accept)
}

// manifest is manifest ref from the bucket when ref is a digest and repo
// may read it, else nil.
func (r *reader) manifest(ctx context.Context, repo, ref string, accept []string) *upstream.Manifest {
	h, err := v1.NewHash(ref)
	if !isDigest(ref) || err != nil || r.skip("manifest") {
		return nil
	}
	obj, err := r.s.object(ctx, manifestName(ref))
	if err != nil {
		r.missed(ctx, "manifest", err)
		return nil
	}
	m, err := decodeManifest(h, obj.Data)
	if err != nil {
		r.s.log.Warn("shared bucket: manifest object unusable; asking inward", "digest", ref, "err", err)
		r.s.metrics.read("manifest", "error")
		return nil
	}
	confirm := func() error { _, err := r.Upstream.HeadManifest(ctx, repo, ref, accept); return err }
	if !r.admit(ctx, "manifest", repo, ref, confirm) {
		return nil
	}
	return m
}

// admit says whether repo may be served digest d, which the bucket has: a
// link says so; without one, the inner upstream's confirmation does, and
// then the link is written so the next request (on any member) needs none.
// It counts the read's outcome.
func (r *reader) admit(ctx context.Context, kind, repo, d string, confirm func() error) bool {
	name := linkName(r.registry, repo, d)
	_, err := r.s.object(ctx, name)
	switch {
	case err == nil:
		r.s.metrics.read(kind, "hit")
		return true
	case !errors.Is(err, blobs.ErrNotFound):
		r.missed(ctx, kind, err)
		return false
	}
	if err := confirm(); err != nil {
		r.s.metrics.read(kind, "denied")
		return false
	}
	r.s.link(ctx, r.registry, repo, d)
	r.s.metrics.read(kind, "confirmed")
	return true
}

// readTimeout bounds a bucket read up to its answer (a bucket answers in
// milliseconds): a bucket that is down or hung costs one request about
// this much, instead of the SDK's seconds of retries, and then rests. A
// read timed out by mistake only sends requests inward for a while.
const readTimeout = time.Second

// linkTimeout bounds writing a link, which may run after its request.
const linkTimeout = 10 * time.Second

func (s *Store) stat(ctx context.Context, h v1.Hash) (blobs.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	return s.tier.Stat(ctx, h)
}

func (s *Store) object(ctx context.Context, name string) (s3.Object, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	return s.tier.GetObject(ctx, name)
}

// open is Open with readTimeout on its answer but not on the body, which
// streams as long as the caller reads.
func (s *Store) open(ctx context.Context, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(readTimeout, cancel)
	body, size, err := s.tier.Open(ctx, h, offset)
	if !timer.Stop() && err == nil {
		body.Close()
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancel()
		return nil, 0, err
	}
	return cancelOnClose{ReadCloser: body, cancel: cancel}, size, nil
}

// cancelOnClose ends a body's context with the body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// missed counts a read the bucket could not answer: absent, or failed.
func (r *reader) missed(ctx context.Context, kind string, err error) {
	if errors.Is(err, blobs.ErrNotFound) {
		r.s.metrics.read(kind, "miss")
		return
	}
	r.s.metrics.read(kind, "error")
	if ctx.Err() == nil {
		r.s.rest(err)
	}
}

// skip reports, and counts, a read that leaves the bucket alone while it
// rests after a failure.
func (r *reader) skip(kind string) bool {
	if !r.s.resting() {
		return false
	}
	r.s.metrics.read(kind, "skipped")
	return true
}

// link lets repo of registry read d from the bucket. A link already there
// is what was wanted; a failure only costs a confirmation later.
func (s *Store) link(ctx context.Context, registry, repo, d string) {
	ctx, cancel := context.WithTimeout(ctx, linkTimeout)
	defer cancel()
	_, err := s.tier.CreateObject(ctx, linkName(registry, repo, d), []byte(d))
	if err != nil && !errors.Is(err, blobs.ErrExists) {
		s.log.Debug("shared bucket: link not written", "repo", repo, "digest", d, "err", err)
	}
}

// encodeManifest is a manifest object: its media type, a newline, and
// its exact bytes.
func encodeManifest(m *upstream.Manifest) []byte {
	return append([]byte(m.MediaType+"\n"), m.Bytes...)
}

// decodeManifest reads a manifest object, checking that its bytes are
// manifest h: a damaged object must not be served as h.
func decodeManifest(h v1.Hash, data []byte) (*upstream.Manifest, error) {
	mt, b, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return nil, errors.New("no media type line")
	}
	got, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if got != h {
		return nil, fmt.Errorf("its bytes have digest %s", got)
	}
	return &upstream.Manifest{Bytes: b, MediaType: string(mt), Digest: h}, nil
}
