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
// transfer that broke off or stalled. Never 500: nothing went wrong in
// the mirror that the client could learn from. A failure shared from the
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
