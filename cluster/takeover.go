package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/upstream"
)

var (
	errStalled    = errors.New("member sent nothing for too long")
	errMemberDown = errors.New("member marked down")
)

// blobReader streams a blob from its owner. When the owner fails
// mid-way (it died, was cut off, stalled) the reader resumes at the byte
// it has reached from the next live member in the blob's hashing order —
// the same member every other member resumes from, so the cluster keeps
// one fill — or, when that next member is this one, from the upstream with
// a Range. The caller (the cache's fill) sees one stream and verifies its
// size and digest as for any source.
type blobReader struct {
	p *peered
	// ctx is the fill's opening context, kept because every reopening
	// must end with the fill it serves, like an http.Response's body.
	ctx       context.Context
	repo, key string
	h         v1.Hash
	off, size int64
	body      io.ReadCloser
	from      string // the member streaming now; "" for the upstream
	tried     map[string]bool
	actx      context.Context         // the current member's stream's
	cancel    context.CancelCauseFunc // ends it
	stall     *time.Timer
	broken    error // the failure a takeover must follow
	failed    error // the takeover failed too: every later Read says so
}

// open starts streaming from the first member in hashing order not tried
// yet; this member's turn means the upstream. A member that answers but
// will not serve (its upstream failed, a loop refused) sends the reader to
// the upstream directly, as would an owner that is not there.
func (r *blobReader) open() error {
	var last error
	for _, m := range r.p.n.Owners(r.key) {
		if r.tried[m] {
			continue
		}
		if m == r.p.n.self {
			return r.fromUpstream()
		}
		actx, cancel := context.WithCancelCause(r.ctx)
		body, size, err := r.p.n.fetchBlob(actx, m, r.p.registry, r.repo, r.h.String(), r.off)
		if err == nil {
			return r.use(actx, m, body, size, cancel)
		}
		cancel(nil)
		r.tried[m] = true
		last = err
		switch {
		case upstream.KindOf(err) == upstream.NotFound, r.ctx.Err() != nil:
			return err
		case !unreachable(err):
			r.p.n.log.Debug("blob from a member refused; asking the upstream", "member", m, "digest", r.h.String(), "err", err)
			return r.fromUpstream()
		}
	}
	if last == nil {
		last = errors.New("no member left to ask")
	}
	return last
}

func (r *blobReader) fromUpstream() error {
	body, size, err := r.p.Upstream.GetBlob(r.ctx, r.repo, r.h, r.off)
	if err != nil {
		return err
	}
	return r.use(r.ctx, "", body, size, nil)
}

// use makes body the stream, watched (for a member) by a stall timer and
// by the member being marked down.
func (r *blobReader) use(actx context.Context, m string, body io.ReadCloser, size int64, cancel context.CancelCauseFunc) error {
	if r.size >= 0 && size >= 0 && size != r.size {
		body.Close()
		if cancel != nil {
			cancel(nil)
		}
		return fmt.Errorf("blob %s: member %q announced %d bytes, %d expected", r.h, m, size, r.size)
	}
	if r.size < 0 {
		r.size = size
	}
	r.body, r.from, r.actx, r.cancel = body, m, actx, cancel
	if m == "" {
		return nil
	}
	r.p.n.countFetch(1)
	r.stall = time.AfterFunc(r.p.n.opts.PeerStall, func() { cancel(errStalled) })
	down := r.p.n.downSignal(m)
	go func() {
		select {
		case <-down:
			cancel(errMemberDown)
		case <-actx.Done():
		}
	}()
	return nil
}

func (r *blobReader) Read(p []byte) (int, error) {
	for {
		if r.failed != nil {
			return 0, r.failed
		}
		if r.broken != nil {
			if err := r.takeOver(); err != nil {
				r.failed = err
				return 0, err
			}
		}
		k, err := r.body.Read(p)
		r.off += int64(k)
		if k > 0 && r.from != "" {
			r.stall.Reset(r.p.n.opts.PeerStall)
			r.p.n.metrics.peerBytes.WithLabelValues(r.from).Add(float64(k))
		}
		if errors.Is(err, io.EOF) && r.size >= 0 && r.off < r.size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil || errors.Is(err, io.EOF) || r.from == "" {
			return k, err
		}
		if c := context.Cause(r.actx); c != nil && !errors.Is(c, context.Canceled) {
			err = fmt.Errorf("%w: %w", c, err)
		}
		r.broken = err
		if k > 0 {
			return k, nil
		}
	}
}

// takeOver resumes after the current member failed.
func (r *blobReader) takeOver() error {
	cause, failed := r.broken, r.from
	r.broken = nil
	r.endAttempt()
	if r.ctx.Err() != nil {
		return cause
	}
	r.p.n.markDown(failed, cause)
	r.tried[failed] = true
	if err := r.open(); err != nil {
		return errors.Join(cause, err)
	}
	to := "peer"
	if r.from == "" {
		to = "self"
	}
	r.p.n.metrics.takeovers.WithLabelValues(to).Inc()
	r.p.n.log.Warn("blob stream from a member broke; resumed", "failed", failed, "to", to, "member", r.from,
		"digest", r.h.String(), "offset", r.off, "err", cause)
	return nil
}

func (r *blobReader) endAttempt() {
	if r.stall != nil {
		r.stall.Stop()
		r.stall = nil
	}
	if r.cancel != nil {
		r.cancel(nil)
		r.cancel = nil
		r.p.n.countFetch(-1)
	}
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

// Close ends the stream.
func (r *blobReader) Close() error {
	r.endAttempt()
	return nil
}
