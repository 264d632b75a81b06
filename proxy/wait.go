package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// waitContext bounds how long a request waits for an upstream before it
// is answered: ResponseTimeout from ctx. The upstream work itself goes on
// in the background (flights and fills outlive their waiters) and what it
// fetches is kept for the next request. It is made only on the way to an
// upstream, so a request the cache answers pays for no timer.
func (s *Server) waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.ResponseTimeout)
}

// revalidateContext bounds the wait for a revalidation that has a cached
// copy to fall back on: RevalidateTimeout, within the request's own bound.
func (s *Server) revalidateContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.RevalidateTimeout)
}

// waitFor bounds the wait of a list fetch: RevalidateTimeout when a cached
// copy can be served instead (haveCopy), else ResponseTimeout.
func (s *Server) waitFor(ctx context.Context, haveCopy bool) (context.Context, context.CancelFunc) {
	if haveCopy {
		return s.revalidateContext(ctx)
	}
	return s.waitContext(ctx)
}

// waitErr is the error of a wait for what that ended with ctx: 503 when
// the wait ran out (the upstream is silent or slow), or the client's own
// cancellation (logged as 499, never sent).
func waitErr(ctx context.Context, what string) error {
	return waitErrOf(ctx.Err(), what)
}

// waitErrOf is waitErr of a wait that ended with the context error err.
func waitErrOf(err error, what string) error {
	cause := fmt.Errorf("waiting for %s: %w", what, err)
	if errors.Is(err, context.DeadlineExceeded) {
		return newError(http.StatusServiceUnavailable, CodeUnavailable,
			"the upstream registry did not answer in time (it is still being asked; try again)").withCause(cause)
	}
	return newError(499, CodeUnavailable, "request canceled").withCause(cause)
}
