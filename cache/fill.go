package cache

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
)

// Source opens the bytes of a blob for a fill from offset on (offset > 0
// resumes a broken transfer), returning the body and the blob's whole
// size, or -1 when the source does not know it. The fill closes the body.
type Source func(ctx context.Context, offset int64) (io.ReadCloser, int64, error)

var (
	// ErrDigestMismatch says the bytes did not hash to the digest asked for.
	ErrDigestMismatch = errors.New("content does not match its digest")
	// ErrSizeMismatch says the source sent more or fewer bytes than announced.
	ErrSizeMismatch = errors.New("content does not match its size")
	// ErrStalled says the source sent nothing for the stall timeout.
	ErrStalled = errors.New("source stalled")
	// errClosing says the store is closing.
	errClosing = errors.New("store is closing")
)

// Fill is one blob on its way into the store. Readers follow it while it
// grows; the last byte is held back until the digest has been verified, so a
// reader can never see a complete body whose bytes are wrong.
type Fill struct {
	digest v1.Hash
	// Origin is what the starter said about where the bytes come from (for
	// example the repository); joiners may use it to decide access.
	Origin string
	ready  chan struct{} // closed when Size is known or opening failed
	done   chan struct{} // closed when the fill committed or failed
	// started is when the fill began (for the console's fills in progress).
	started time.Time

	// view is what readers see, published by the fill at each wake-up;
	// readers load it without taking mu.
	view atomic.Pointer[fillView]

	mu      sync.Mutex
	size    int64
	written int64
	err     error
	final   bool
	// verified: every byte arrived and matched the digest; readers may
	// have them all while the file is made durable and committed.
	verified bool
	// woken is written as of the last wake-up, at lastWake; pending, when
	// set, wakes readers for the bytes that arrived since.
	woken    int64
	lastWake time.Time
	pending  *time.Timer
	path     string   // the temp file, then the committed blob
	file     *os.File // open while the fill or a reader holds a reference
	refs     int
	room     *reservation // the room admitted for it, until it commits
}

// fillView is one published state of a fill: immutable, replaced (and its
// wake closed) at the next wake-up.
type fillView struct {
	avail    int64 // bytes a reader may read
	complete bool  // avail is the whole blob
	err      error // the fill failed
	wake     chan struct{}
}

// Readers are woken in batches: a fill reading a fast upstream in small
// pieces (a TLS record is 16 KiB) would otherwise wake every follower, and
// cost each a sendfile, per piece. A wake-up happens when wakeBytes more
// have arrived or wakeEvery has passed since the last one, whichever comes
// first; the first bytes, the verified end and a failure wake readers at
// once.
const (
	wakeBytes = 64 << 10
	wakeEvery = 2 * time.Millisecond
)

// Ready is closed once the source has answered: then Size and OpenErr are set.
func (f *Fill) Ready() <-chan struct{} { return f.ready }

// Done is closed once the fill committed or failed; then Err is final.
func (f *Fill) Done() <-chan struct{} { return f.done }

// Size is the blob's size, or -1 while unknown.
func (f *Fill) Size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// Err is the fill's error so far: nil while it runs or after it committed.
func (f *Fill) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Complete reports whether every byte is there and verified.
func (f *Fill) Complete() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.completeLocked()
}

// Written is how many bytes have arrived so far.
func (f *Fill) Written() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written
}

// visible is how far a reader may read: everything once verified, all but
// the last byte before.
func (f *Fill) visibleLocked() int64 {
	if f.completeLocked() {
		return f.written
	}
	return max(f.written-1, 0)
}

// completeLocked: a reader that has read everything visible is at the end.
func (f *Fill) completeLocked() bool {
	return f.verified || (f.final && f.err == nil)
}

// publishLocked wakes every reader with the fill's state now.
func (f *Fill) publishLocked(now time.Time) {
	f.woken, f.lastWake = f.written, now
	if f.pending != nil {
		f.pending.Stop()
		f.pending = nil
	}
	next := &fillView{avail: f.visibleLocked(), complete: f.completeLocked(), err: f.err, wake: make(chan struct{})}
	if old := f.view.Swap(next); old != nil {
		close(old.wake)
	}
}

// wakeLaterLocked makes sure the bytes that arrived since the last
// wake-up reach readers at most wakeEvery after it.
func (f *Fill) wakeLaterLocked(now time.Time) {
	if f.pending == nil {
		f.pending = time.AfterFunc(f.lastWake.Add(wakeEvery).Sub(now), f.wakePending)
	}
}

func (f *Fill) wakePending() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = nil
	if f.written > f.woken && !f.final {
		f.publishLocked(time.Now())
	}
}

// NewReader returns a reader of the blob from its first byte. It blocks in
// Read until bytes are there, ctx ends, or the fill fails. Close it.
//
// A fill that had ended when NewReader is called (a committed blob that
// StartFill found, or a fill every reader has left) opens the committed
// file only now: if an eviction pass deleted it in between, the error is
// ErrNotFound, and the blob is a miss again, to be fetched anew.
func (f *Fill) NewReader(ctx context.Context) (*FillReader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.file == nil && f.err == nil {
		// Every earlier reference is gone: the blob is committed at f.path.
		file, err := os.Open(f.path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open blob %s: %w", f.digest, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("open blob: %w", err)
		}
		f.file = file
	}
	f.refs++
	return &FillReader{f: f, ctx: ctx, file: f.file}, nil
}

func (f *Fill) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs--
	if f.refs == 0 && f.file != nil {
		f.file.Close()
		f.file = nil
	}
}

// FillReader reads a blob while its fill grows. It is an io.ReadSeeker once
// the size is known, so http.ServeContent can answer Range requests with it.
type FillReader struct {
	f      *Fill
	ctx    context.Context
	file   *os.File // the fill's, kept open by the reader's reference
	off    int64
	closed bool
	// BeforeWait, if set, runs each time Read is about to wait for bytes:
	// an HTTP handler flushes there, so headers and every byte already
	// read reach the client before the reader blocks.
	BeforeWait func()
	// Failed is the fill or context error that stopped the reader, if any.
	Failed error
}

// Read reads bytes as they become visible.
func (r *FillReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		st, err := r.state()
		if err != nil {
			return 0, err
		}
		if r.off < st.avail {
			n, rerr := r.file.ReadAt(p[:min(int64(len(p)), st.avail-r.off)], r.off)
			r.off += int64(n)
			if n > 0 {
				return n, nil
			}
			return 0, fmt.Errorf("read fill: %w", rerr)
		}
		if st.complete {
			return 0, io.EOF
		}
		if err := r.wait(st.wake); err != nil {
			return 0, err
		}
	}
}

// WriteTo copies the blob from the reader's offset to w as bytes become
// visible. It copies from a file of its own with io.CopyN, so a
// net/http ResponseWriter sends with sendfile: followers of a fill cost
// the kernel's copy, not a trip through user space.
func (r *FillReader) WriteTo(w io.Writer) (int64, error) {
	file, err := r.ownFile()
	if err != nil {
		return io.Copy(w, struct{ io.Reader }{r})
	}
	defer file.Close()
	var total int64
	for {
		st, err := r.state()
		if err != nil {
			return total, err
		}
		if r.off < st.avail {
			n, err := io.CopyN(w, file, st.avail-r.off)
			r.off += n
			total += n
			if err != nil {
				return total, err
			}
			continue
		}
		if st.complete {
			return total, nil
		}
		if err := r.wait(st.wake); err != nil {
			return total, err
		}
	}
}

// state is the fill as last published; a failed fill is the reader's
// error. It takes no lock: a herd of readers woken at once does not queue
// on the fill's mutex.
func (r *FillReader) state() (*fillView, error) {
	v := r.f.view.Load()
	if v.err != nil {
		r.Failed = v.err
		return nil, v.err
	}
	return v, nil
}

// wait blocks until the fill changes or the reader's context ends.
func (r *FillReader) wait(wake <-chan struct{}) error {
	if r.BeforeWait != nil {
		r.BeforeWait()
	}
	select {
	case <-wake:
		return nil
	case <-r.ctx.Done():
		r.Failed = r.ctx.Err()
		return r.ctx.Err()
	}
}

// ownFile opens the fill's file anew, at the reader's offset: a file
// description of its own (not a dup, which would share the offset), found
// through /proc while the reader's reference keeps the fill's file open.
func (r *FillReader) ownFile() (*os.File, error) {
	file, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", r.file.Fd()))
	if err != nil {
		return nil, err
	}
	if _, err := file.Seek(r.off, io.SeekStart); err != nil {
		file.Close()
		return nil, err
	}
	return file, nil
}

// Seek sets the offset; io.SeekEnd needs the size to be known.
func (r *FillReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		size := r.f.Size()
		if size < 0 {
			return 0, errors.New("seek from end: size unknown")
		}
		offset += size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative offset")
	}
	r.off = offset
	return offset, nil
}

// Close releases the reader; the fill goes on without it.
func (r *FillReader) Close() error {
	if !r.closed {
		r.closed = true
		r.f.release()
	}
	return nil
}

// fillSet maps digests to the fills in flight.
type fillSet struct {
	mu      sync.Mutex
	m       map[v1.Hash]*Fill
	failed  *failures
	closing bool
	cancel  []context.CancelFunc
}

func (fs *fillSet) closeAll() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.closing = true
	for _, c := range fs.cancel {
		c()
	}
}

// StartFill returns the fill of blob h: the one in flight, a finished one if
// the blob is committed, a failed one if a fill from the same origin failed
// within its backoff (its error is a *RecentFailure), or a new one reading
// from open. size is the size expected (-1 if unknown); origin is recorded
// on a new fill. started says whether this call started the fill.
func (s *Store) StartFill(h v1.Hash, size int64, origin string, open Source) (f *Fill, started bool, err error) {
	s.fills.mu.Lock()
	defer s.fills.mu.Unlock()
	if s.fills.closing {
		return nil, false, errClosing
	}
	if f := s.fills.m[h]; f != nil {
		return f, false, nil
	}
	// Re-check under the lock: a fill that just committed is gone from the
	// map but its file is in place.
	if fi, err := os.Stat(s.blobPath(h)); err == nil {
		return committedFill(h, s.blobPath(h), fi.Size()), false, nil
	}
	if rf, ok := s.fills.failed.recent(h, origin, time.Now()); ok {
		return failedFill(h, origin, rf), false, nil
	}
	tmp, err := os.CreateTemp(s.tier.TempDir(), h.Hex+"-*")
	if err != nil {
		return nil, false, diskError("create temp file in", filepath.Join(s.dir, "tmp", h.Hex), err)
	}
	f = newFill(h, origin, tmp.Name())
	f.file, f.refs = tmp, 1 // the fill's own reference
	s.fills.m[h] = f
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.FillTimeout)
	s.fills.cancel = append(s.fills.cancel, cancel)
	s.wg.Add(1)
	go s.runFill(ctx, cancel, f, size, open)
	return f, true, nil
}

func newFill(h v1.Hash, origin, path string) *Fill {
	f := &Fill{digest: h, Origin: origin, ready: make(chan struct{}), done: make(chan struct{}),
		started: time.Now(), size: -1, path: path}
	f.view.Store(&fillView{wake: make(chan struct{})})
	return f
}

// committedFill is a finished fill of a committed blob; its file is opened
// by the first reader.
func committedFill(h v1.Hash, path string, size int64) *Fill {
	f := newFill(h, "", path)
	f.size, f.written, f.final = size, size, true
	f.publishLocked(time.Now())
	close(f.ready)
	close(f.done)
	return f
}

func (s *Store) runFill(ctx context.Context, cancel context.CancelFunc, f *Fill, want int64, open Source) {
	defer s.wg.Done()
	defer cancel()
	tmpName := f.path
	err := s.fillFrom(ctx, f, want, open)
	if err == nil {
		// The bytes are right: release the held-back end to the readers
		// now, not after the fsync; the commit below only makes them
		// durable and visible to later requests.
		f.verify()
		err = s.commit(f, tmpName)
	}
	f.room.release()
	if err != nil {
		os.Remove(tmpName)
		level := fillFailureLevel(err)
		s.log.Log(ctx, level, "fill failed", append([]any{"digest", f.digest.String(), "origin", f.Origin, "err", err}, failureAttrs(err)...)...)
		if level == failureLevelWarn {
			s.metrics.fillFailures.WithLabelValues(failureCause(err)).Inc()
		}
		if errors.Is(err, ErrNoSpace) {
			s.kickEviction()
		}
	}
	s.fills.mu.Lock()
	delete(s.fills.m, f.digest)
	s.fills.failed.note(f.digest, f.Origin, err, time.Now())
	s.fills.mu.Unlock()
	f.finish(err)
	f.release()
}

// fillFrom opens the source and copies it into the temp file, hashing.
func (s *Store) fillFrom(ctx context.Context, f *Fill, want int64, open Source) error {
	at, size, err := s.openAt(ctx, open, 0)
	if err != nil {
		f.fail(err)
		return err
	}
	if want >= 0 && size >= 0 && want != size {
		at.close()
		err := fmt.Errorf("%w: expected %d bytes, source announced %d", ErrSizeMismatch, want, size)
		f.fail(err)
		return err
	}
	if size < 0 {
		size = want
	}
	if f.room, err = s.reserve(size); err != nil {
		at.close()
		f.fail(err)
		return err
	}
	f.mu.Lock()
	f.size = size
	f.mu.Unlock()
	close(f.ready)
	h, err := v1.Hasher(f.digest.Algorithm)
	if err != nil {
		at.close()
		return err
	}
	var n int64
	for resumes := 0; ; resumes++ {
		n, err = s.copyFill(at, f, h, size, n)
		at.close()
		var se *sourceError
		if err == nil || !errors.As(err, &se) || resumes == maxResumes || ctx.Err() != nil {
			break
		}
		s.log.Info("resuming fill", "digest", f.digest.String(), "origin", f.Origin, "offset", n, "err", err)
		var rerr error
		if at, _, rerr = s.openAt(ctx, open, n); rerr != nil {
			err = errors.Join(err, fmt.Errorf("resume at %d: %w", n, rerr))
			break
		}
	}
	if err != nil {
		return err
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != f.digest.Hex {
		return fmt.Errorf("%w: got %s:%s", ErrDigestMismatch, f.digest.Algorithm, got)
	}
	return nil
}

// maxResumes bounds how often a fill whose source broke off is resumed
// from where it stopped.
const maxResumes = 3

// attempt is one opening of the source, on a context of its own that the
// stall timer can cancel, so a stalled read is interrupted, not only noticed.
type attempt struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	body   io.ReadCloser
}

func (a attempt) close() {
	a.body.Close()
	a.cancel(nil)
}

func (s *Store) openAt(ctx context.Context, open Source, offset int64) (attempt, int64, error) {
	actx, cancel := context.WithCancelCause(ctx)
	body, size, err := open(actx, offset)
	if err != nil {
		cancel(nil)
		return attempt{}, 0, err
	}
	return attempt{ctx: actx, cancel: cancel, body: body}, size, nil
}

// sourceError is a failure to read the source: the fill may resume.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// copyFill copies the attempt's body into the fill's file from offset n,
// waking readers after each chunk, failing on a stall, on more bytes than
// size, or on fewer at EOF. It returns how far the file got.
func (s *Store) copyFill(at attempt, f *Fill, h hash.Hash, size, n int64) (int64, error) {
	stall := time.AfterFunc(s.opts.StallTimeout, func() { at.cancel(ErrStalled) })
	defer stall.Stop()
	buf := make([]byte, 256<<10)
	for {
		k, rerr := at.body.Read(buf)
		if k > 0 {
			stall.Reset(s.opts.StallTimeout)
			if size >= 0 && n+int64(k) > size {
				return n, fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, size)
			}
			if _, err := f.file.WriteAt(buf[:k], n); err != nil {
				return n, diskError("write", f.file.Name(), err)
			}
			n += int64(k)
			// Readers may send these bytes while they are hashed: only the
			// last byte waits for the digest (verify).
			f.advance(n)
			h.Write(buf[:k])
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			if cause := context.Cause(at.ctx); cause != nil {
				rerr = cause
			}
			return n, &sourceError{fmt.Errorf("read source after %d bytes: %w", n, rerr)}
		}
	}
	if size >= 0 && n != size {
		return n, fmt.Errorf("%w: got %d of %d bytes", ErrSizeMismatch, n, size)
	}
	return n, nil
}

// commit makes the verified temp file durable and moves it into place.
func (s *Store) commit(f *Fill, tmpName string) error {
	dst := s.blobPath(f.digest)
	if err := s.tier.Place(f.file, f.digest); err != nil && !errors.Is(err, blobs.ErrExists) {
		return diskError("commit blob to", dst, err)
	}
	f.mu.Lock()
	f.path = dst
	f.mu.Unlock()
	if err := s.recordBlob(f.digest); err != nil {
		s.log.Warn("record blob file", "digest", f.digest.String(), "err", err)
	}
	if err := s.putBlobSize(f.digest, f.Written()); err != nil {
		s.log.Warn("record blob size", "digest", f.digest.String(), "err", err)
	}
	s.access.touch(f.digest)
	return nil
}

// advance records that the file holds n bytes and wakes readers when the
// batching rule says so (see wakeBytes).
func (f *Fill) advance(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.written = n
	now := time.Now()
	// f.woken <= 1: readers have not been shown a byte yet (the last one
	// is held back), so these are the first bytes and go out at once.
	if f.woken <= 1 || n-f.woken >= wakeBytes || now.Sub(f.lastWake) >= wakeEvery {
		f.publishLocked(now)
		return
	}
	f.wakeLaterLocked(now)
}

// verify releases the held-back end: every byte is there and right.
func (f *Fill) verify() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verified = true
	f.publishLocked(time.Now())
}

// fail records an error before the source answered.
func (f *Fill) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.publishLocked(time.Now())
	f.mu.Unlock()
	close(f.ready)
}

func (f *Fill) finish(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.final = true
	if f.size < 0 && err == nil {
		f.size = f.written
	}
	f.publishLocked(time.Now())
	f.mu.Unlock()
	close(f.done)
}
