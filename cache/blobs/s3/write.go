package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
)

// abortTimeout bounds the abort of a failed upload, which runs even when
// the write's own context has ended (else the parts would stay, billed,
// until a sweep).
const abortTimeout = 30 * time.Second

// Create implements blobs.Tier. A blob of at most one part is buffered and
// sent with one PutObject at Commit; a larger one streams into a multipart
// upload as its parts fill, one part uploading while the next fills, so a
// write holds at most two parts in memory whatever the blob's size. Either
// way the object appears only at Commit, after the digest checked out, and
// only if no other writer created it first (If-None-Match: *).
func (t *Tier) Create(ctx context.Context, h v1.Hash, size int64) (blobs.Writer, error) {
	v, err := blobs.NewVerifier(h, size)
	if err != nil {
		return nil, err
	}
	partSize := max(t.partSize, (size+maxParts-1)/maxParts)
	parts := make(chan part)
	w := &writer{
		v:        v,
		partSize: partSize,
		buf:      make([]byte, 0, min(size, partSize)),
		parts:    parts,
		free:     make(chan []byte, 2),
		done:     make(chan error, 1),
		held:     1,
	}
	u := &upload{t: t, h: h, key: t.blobKey(h)}
	go func() { w.done <- u.run(ctx, parts, w.free) }()
	return w, nil
}

// part is a message to the uploader: bytes of the next part, the last part
// (commit after it), or an abort.
type part struct {
	data  []byte
	last  bool
	abort bool
}

// errCancelled is the uploader's outcome after the writer's Cancel.
var errCancelled = errors.New("write cancelled")

// writer hashes and buffers what the caller writes, and hands full parts to
// its uploader goroutine.
type writer struct {
	v        *blobs.Verifier
	partSize int64
	buf      []byte
	parts    chan<- part
	free     chan []byte // buffers the uploader is done with
	done     chan error  // the uploader's outcome, sent once
	held     int         // part buffers allocated so far, at most 2
	closed   bool
	finished bool  // the uploader's outcome has been received
	result   error // that outcome
}

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, blobs.ErrClosed
	}
	if w.finished {
		return 0, w.result
	}
	if _, err := w.v.Write(p); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		if int64(len(w.buf)) == w.partSize {
			if err := w.sendFull(); err != nil {
				return n, err
			}
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		p, n = p[c:], n+c
	}
	return n, nil
}

// sendFull hands the full buffer to the uploader and takes an empty one:
// a spare, a second if only one exists, else the one the uploader returns.
func (w *writer) sendFull() error {
	if err := w.send(part{data: w.buf}); err != nil {
		return err
	}
	select {
	case b := <-w.free:
		w.buf = b
		return nil
	default:
	}
	if w.held < 2 {
		w.held++
		w.buf = make([]byte, 0, w.partSize)
		return nil
	}
	select {
	case b := <-w.free:
		w.buf = b
		return nil
	case err := <-w.done:
		w.finish(err)
		return err
	}
}

// send gives p to the uploader, unless it has already stopped.
func (w *writer) send(p part) error {
	select {
	case w.parts <- p:
		return nil
	case err := <-w.done:
		w.finish(err)
		return err
	}
}

// wait returns the uploader's outcome.
func (w *writer) wait() error {
	if !w.finished {
		w.finish(<-w.done)
	}
	return w.result
}

func (w *writer) finish(err error) {
	w.finished, w.result = true, err
	w.buf = nil
}

func (w *writer) Commit() error {
	if w.closed {
		return blobs.ErrClosed
	}
	w.closed = true
	if w.finished {
		return w.result
	}
	if err := w.v.Verify(); err != nil {
		w.abort()
		return err
	}
	if err := w.send(part{data: w.buf, last: true}); err != nil {
		return err
	}
	return w.wait()
}

func (w *writer) Cancel() error {
	w.closed = true
	if w.finished {
		return nil
	}
	return w.abort()
}

// abort stops the uploader, which aborts any multipart upload it started.
func (w *writer) abort() error {
	if err := w.send(part{abort: true}); err != nil {
		return nil // the uploader had already stopped, and cleaned up
	}
	if err := w.wait(); !errors.Is(err, errCancelled) {
		return err
	}
	return nil
}

// upload is the uploader goroutine's state: the multipart upload, once the
// first full part arrives.
type upload struct {
	t         *Tier
	h         v1.Hash
	key       string
	id        *string
	completed []types.CompletedPart
}

// run uploads the parts it is sent until the last one or an abort, and
// returns the write's outcome. It also ends when ctx does, so a writer
// abandoned without Cancel leaves no goroutine nor upload behind.
func (u *upload) run(ctx context.Context, parts <-chan part, free chan<- []byte) error {
	for {
		var p part
		select {
		case p = <-parts:
		case <-ctx.Done():
			u.abort(ctx)
			return context.Cause(ctx)
		}
		err := u.handle(ctx, p)
		if err != nil || p.last || p.abort {
			if err != nil && u.id != nil {
				u.abort(ctx)
			}
			return err
		}
		free <- p.data[:0]
	}
}

func (u *upload) handle(ctx context.Context, p part) error {
	switch {
	case p.abort:
		return errCancelled
	case p.last && u.id == nil:
		return u.putWhole(ctx, p.data)
	}
	if err := u.uploadPart(ctx, p.data); err != nil {
		return err
	}
	if p.last {
		return u.complete(ctx)
	}
	return nil
}

// putWhole writes a blob of one part with one conditional PutObject.
func (u *upload) putWhole(ctx context.Context, data []byte) error {
	_, err := u.t.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &u.t.bucket, Key: &u.key, Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))), IfNoneMatch: aws.String("*"),
	})
	if conditionFailed(err) {
		return u.refused(ctx, err)
	}
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", u.h, err)
	}
	u.t.counters.sent(len(data))
	return nil
}

func (u *upload) uploadPart(ctx context.Context, data []byte) error {
	if u.id == nil {
		if err := u.start(ctx); err != nil {
			return err
		}
	}
	n := int32(len(u.completed) + 1)
	out, err := u.t.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &u.t.bucket, Key: &u.key, UploadId: u.id, PartNumber: aws.Int32(n),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return fmt.Errorf("s3: upload part %d of %s: %w", n, u.h, err)
	}
	u.t.counters.sent(len(data))
	u.completed = append(u.completed, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	return nil
}

// start creates the multipart upload. It runs on a context of its own:
// cancelled mid-request, the upload could be created with its ID never
// read, and so never aborted.
func (u *upload) start(ctx context.Context) error {
	own, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	out, err := u.t.client.CreateMultipartUpload(own, &s3.CreateMultipartUploadInput{Bucket: &u.t.bucket, Key: &u.key})
	if err != nil {
		return fmt.Errorf("s3: start upload of %s: %w", u.h, err)
	}
	u.id = out.UploadId
	return context.Cause(ctx)
}

// complete commits the upload unless the blob exists (If-None-Match: *);
// a refused upload is aborted by run, as any failed one.
func (u *upload) complete(ctx context.Context) error {
	_, err := u.t.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &u.t.bucket, Key: &u.key, UploadId: u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.completed},
		IfNoneMatch:     aws.String("*"),
	})
	if conditionFailed(err) {
		return u.refused(ctx, err)
	}
	if err != nil {
		return fmt.Errorf("s3: complete upload of %s: %w", u.h, err)
	}
	u.id = nil
	return nil
}

// refused says why the bucket refused to create the blob: it exists (412),
// or another write of it was in flight (409 ConditionalRequestConflict),
// which is ErrExists only if that write has landed; if not, the caller may
// write again.
func (u *upload) refused(ctx context.Context, err error) error {
	if status(err) == http.StatusConflict {
		if _, statErr := u.t.Stat(ctx, u.h); statErr != nil {
			return fmt.Errorf("s3: write of %s conflicted with another, which has not landed: %w", u.h, err)
		}
	}
	return fmt.Errorf("%w: %s: %w", blobs.ErrExists, u.h, err)
}

// abort drops the multipart upload, on a context of its own: ctx may be
// the reason for the abort.
func (u *upload) abort(ctx context.Context) {
	if u.id == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	// A failed abort leaves the upload to SweepUploads.
	u.t.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.t.bucket, Key: &u.key, UploadId: u.id})
	u.id = nil
}
