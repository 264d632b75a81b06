package proxy

import (
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// fillError is what every client that waited on or joined a failed fill is
// told: the upstream's own answer when it gave one (404, 403, 429, 503),
// 502 when the bytes it sent did not match the digest or size, 503 for a
// transfer that broke off or stalled, and 503 naming the mirror's disk
// when that is what failed (localError). Never 500. A failure shared from the
// fill just before carries Retry-After: the end of its backoff, which the
// cache keeps on the wall clock, so now is time.Now.
func fillError(err error, now time.Time) error {
	var we *Error
	if errors.As(err, &we) {
		return err
	}
	var e *Error
	switch {
	case upstream.KindOf(err) == upstream.NotFound:
		return err // BLOB_UNKNOWN
	case cache.IsLocal(err):
		return localError(err)
	case errors.Is(err, cache.ErrDigestMismatch), errors.Is(err, cache.ErrSizeMismatch):
		e = newError(http.StatusBadGateway, CodeUnavailable,
			"the upstream registry sent bytes that do not match the blob's digest or size; nothing was stored")
	default:
		var ue *upstream.Error
		if errors.As(err, &ue) {
			e = upstreamError(ue, notFoundFor(RouteBlob))
		} else {
			e = newError(http.StatusServiceUnavailable, CodeUnavailable,
				"the transfer from the upstream registry broke off or stalled; nothing was stored")
		}
	}
	var rf *cache.RecentFailure
	if errors.As(err, &rf) && e.RetryAfter == 0 {
		e.RetryAfter = int(math.Ceil(rf.Until.Sub(now).Seconds()))
	}
	return e.withCause(err)
}

// localError is the answer when the mirror's own disk failed a request:
// 503 saying so, so that neither the client nor the operator looks for
// the cause upstream. The log line has the path and the space free.
func localError(err error) *Error {
	msg := "the mirror could not write to its disk (a local failure, not the upstream's): nothing new can be cached right now"
	if errors.Is(err, cache.ErrNoSpace) || errors.Is(err, cache.ErrIndexReadOnly) {
		msg = "the mirror's disk is full: cached content is served, nothing new can be cached right now"
	}
	return newError(http.StatusServiceUnavailable, CodeUnavailable, msg).withCause(err)
}
