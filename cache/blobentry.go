package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BlobSource is the caller's side of a blob request: where the bytes come
// from when the store does not hold them, and who may read them. The
// proxy implements it over an upstream registry.
type BlobSource interface {
	// Open opens the blob's bytes from offset on (see Source).
	Open(ctx context.Context, offset int64) (io.ReadCloser, int64, error)
	// Confirm says whether the requesting repository may read a blob it is
	// not linked to (the source has it under that repository); nil means
	// yes, and the store then links it.
	Confirm(ctx context.Context) error
	// Refused is a refusal the caller remembers (a recent "not found"),
	// checked before a fill is joined or started; nil lets it go on.
	Refused() error
}

// BlobRequest is one request for a blob.
type BlobRequest struct {
	Digest v1.Hash
	// Repo asks for the blob; the repository is the permission boundary:
	// a blob is served to it only when linked to it or confirmed by Source.
	Repo   Repo
	Source BlobSource
	// Wait bounds the wait for the source's first answer (0: only ctx).
	Wait time.Duration
	// StoredOnly serves what is stored and starts or joins no fill
	// (offline): anything else is ErrNotFound.
	StoredOnly bool
	// SizeOnly (a HEAD) starts no fill: a blob not stored is answered from
	// a fill in flight, by its size only, or is ErrNotFound.
	SizeOnly bool
	// Ranged: the caller reads a range, which needs the size; a fill of
	// unknown size is waited for until it ends.
	Ranged bool
}

// FillError is the failure of the fill a request joined or started: the
// source's own answer, a digest or size mismatch, a broken transfer, or a
// *RecentFailure shared from the fill just before.
type FillError struct{ Err error }

func (e *FillError) Error() string { return e.Err.Error() }
func (e *FillError) Unwrap() error { return e.Err }

// WaitError says the source did not answer within the request's Wait, or
// the request's context ended first; Err is the context's error.
type WaitError struct {
	Digest v1.Hash
	Err    error
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("waiting for the source of blob %s: %v", e.Digest, e.Err)
}
func (e *WaitError) Unwrap() error { return e.Err }

// Blob is a blob opened for one request: a stored file (sent with
// sendfile), or a reader of a fill that follows the file as it grows. It
// is an io.ReadSeeker once its size is known, so Range requests can be
// answered while the fill runs. Close it.
type Blob struct {
	file    *BlobFile
	fill    *Fill
	rd      *FillReader
	size    int64 // SizeOnly answers: no reader
	started bool
	cached  bool
}

// Blob opens d for req.Repo: it lends the stored file, or joins the fill
// in flight, or starts one from req.Source, and returns a reader of the
// bytes. It owns the races between them: a blob an eviction pass deletes
// between a fill's end and the opening of its file is fetched again, as a
// cold one. ctx is the request's: the reader stops when it ends.
//
// Errors: ErrNotFound (not stored, and no fill allowed or known), the
// Source's own errors (Refused, Confirm), *WaitError, *FillError, and
// local failures (no space, closing store).
func (s *Store) Blob(ctx context.Context, req BlobRequest) (*Blob, error) {
	if file, err := s.lendBlob(req.Digest); err == nil {
		return s.lendStored(ctx, req, file)
	}
	if req.StoredOnly {
		return nil, ErrNotFound
	}
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if req.Wait > 0 {
		wctx, cancel = context.WithTimeout(ctx, req.Wait)
	}
	defer cancel()
	if req.SizeOnly {
		return s.sizeFromFill(wctx, req)
	}
	for attempt := 0; ; attempt++ {
		f, started, err := s.joinFill(wctx, req)
		if err != nil {
			return nil, err
		}
		rd, err := s.readFill(ctx, req, f)
		// Twice at most: a blob evicted again right after its refetch is
		// a miss for this request, not a loop.
		if errors.Is(err, ErrNotFound) && attempt < 2 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &Blob{fill: f, rd: rd, started: started, cached: !started && f.Complete()}, nil
	}
}

// lendStored lends the stored file of req.Digest, once req.Repo may read it.
func (s *Store) lendStored(ctx context.Context, req BlobRequest, file *BlobFile) (*Blob, error) {
	if err := s.authorize(ctx, req); err != nil {
		file.Close()
		return nil, err
	}
	return &Blob{file: file, cached: true}, nil
}

// authorize checks that req.Repo may read the blob: linked to it, or
// confirmed by the source (and then linked).
func (s *Store) authorize(ctx context.Context, req BlobRequest) error {
	if s.Linked(req.Repo, req.Digest) {
		return nil
	}
	if err := req.Source.Confirm(ctx); err != nil {
		return err
	}
	return s.Link(req.Repo, req.Digest)
}

// joinFill returns the fill of the blob that req.Repo may read, once its
// source answered, starting one if none runs. A fill started for another
// repository is joined only once req.Repo may read the blob; if that fill
// failed to open, req.Repo tries its own.
func (s *Store) joinFill(ctx context.Context, req BlobRequest) (*Fill, bool, error) {
	if err := req.Source.Refused(); err != nil {
		return nil, false, err
	}
	d, origin := req.Digest, req.Repo.String()
	for attempt := 0; ; attempt++ {
		f, started, err := s.StartFill(d, s.knownSize(d), origin, req.Source.Open)
		if err != nil {
			return nil, false, err
		}
		if !started && f.Origin != origin {
			if err := s.authorize(ctx, req); err != nil {
				return nil, false, err
			}
		}
		if err := waitFor(ctx, d, f.Ready()); err != nil {
			return nil, false, err
		}
		err = f.Err()
		if err == nil {
			if started {
				s.linkFilled(req)
			}
			return f, started, nil
		}
		if started || f.Origin == origin || attempt > 0 {
			return nil, false, &FillError{Err: err}
		}
	}
}

// linkFilled links a blob to the repository whose fill fetched it; the
// bytes are served even if the link cannot be written.
func (s *Store) linkFilled(req BlobRequest) {
	if err := s.Link(req.Repo, req.Digest); err != nil {
		s.log.Warn("link blob", "repo", req.Repo.String(), "digest", req.Digest.String(), "err", err)
	}
}

// readFill opens a reader of f for the request. A range of a blob of
// unknown size waits for the fill to finish first. A fill that had ended
// opens the committed file only now: ErrNotFound if an eviction deleted it.
func (s *Store) readFill(ctx context.Context, req BlobRequest, f *Fill) (*FillReader, error) {
	if f.Size() < 0 && req.Ranged {
		select {
		case <-f.Done():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := f.Err(); err != nil {
			return nil, &FillError{Err: err}
		}
	}
	return f.NewReader(ctx)
}

// sizeFromFill answers a SizeOnly request from the fill in flight, once
// its source answered, with the recorded size when the fill knows none.
func (s *Store) sizeFromFill(ctx context.Context, req BlobRequest) (*Blob, error) {
	f, ok := s.inFlight(req.Digest)
	if !ok {
		return nil, ErrNotFound
	}
	if f.Origin != req.Repo.String() {
		if err := s.authorize(ctx, req); err != nil {
			return nil, err
		}
	}
	if err := waitFor(ctx, req.Digest, f.Ready()); err != nil {
		return nil, err
	}
	if err := f.Err(); err != nil {
		return nil, &FillError{Err: err}
	}
	size := f.Size()
	if size < 0 {
		size = s.knownSize(req.Digest)
	}
	if size < 0 {
		return nil, ErrNotFound
	}
	return &Blob{size: size}, nil
}

func waitFor(ctx context.Context, d v1.Hash, ready <-chan struct{}) error {
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return &WaitError{Digest: d, Err: ctx.Err()}
	}
}

func (s *Store) knownSize(d v1.Hash) int64 {
	if n, err := s.blobSize(d); err == nil {
		return n
	}
	return -1
}

// Size is the blob's size, or -1 while a fill does not know it.
func (b *Blob) Size() int64 {
	switch {
	case b.file != nil:
		return b.file.Size()
	case b.fill != nil:
		return b.fill.Size()
	}
	return b.size
}

// Stored: the blob is a committed file, with sendfile and every byte there.
func (b *Blob) Stored() bool { return b.file != nil }

// Cached: no byte of it is awaited from the source (stored, or a fill
// already verified).
func (b *Blob) Cached() bool { return b.cached }

// Started: this request started the blob's fill.
func (b *Blob) Started() bool { return b.started }

// Readable: the blob has a reader (a SizeOnly answer from a fill has none).
func (b *Blob) Readable() bool { return b.file != nil || b.rd != nil }

func (b *Blob) Read(p []byte) (int, error) {
	if b.file != nil {
		return b.file.Read(p)
	}
	if b.rd == nil {
		return 0, io.EOF
	}
	return b.rd.Read(p)
}

// Seek seeks the reader; from the end only once the size is known.
func (b *Blob) Seek(offset int64, whence int) (int64, error) {
	if b.file != nil {
		return b.file.Seek(offset, whence)
	}
	if b.rd == nil {
		return 0, errors.New("seek: no reader")
	}
	return b.rd.Seek(offset, whence)
}

// WriteTo copies the blob to w, waiting for a fill's bytes as they come,
// with sendfile in both cases.
func (b *Blob) WriteTo(w io.Writer) (int64, error) {
	if b.file != nil {
		return io.Copy(w, b.file)
	}
	if b.rd == nil {
		return 0, nil
	}
	return b.rd.WriteTo(w)
}

// SyscallConn lets net/http send a stored blob with sendfile; a fill's
// reader has none (net/http then copies through Read).
func (b *Blob) SyscallConn() (syscall.RawConn, error) {
	if b.file != nil {
		return b.file.SyscallConn()
	}
	return nil, errors.New("blob: not a stored file")
}

// OnWait, if set, runs each time a fill's reader is about to wait for
// bytes: an HTTP handler flushes there, so what was read reaches the
// client before the reader blocks.
func (b *Blob) OnWait(fn func()) {
	if b.rd != nil {
		b.rd.BeforeWait = fn
	}
}

// Failed is the fill or context error that stopped the reader, if any.
func (b *Blob) Failed() error {
	if b.rd != nil {
		return b.rd.Failed
	}
	return nil
}

// Close gives back the stored file's descriptor or leaves the fill.
func (b *Blob) Close() error {
	switch {
	case b.file != nil:
		return b.file.Close()
	case b.rd != nil:
		return b.rd.Close()
	}
	return nil
}
