package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// Error codes of the OCI distribution spec, and UNAVAILABLE for an upstream
// that cannot be reached while nothing is cached.
const (
	CodeBlobUnknown       = "BLOB_UNKNOWN"
	CodeDigestInvalid     = "DIGEST_INVALID"
	CodeManifestUnknown   = "MANIFEST_UNKNOWN"
	CodeManifestInvalid   = "MANIFEST_INVALID"
	CodeNameInvalid       = "NAME_INVALID"
	CodeNameUnknown       = "NAME_UNKNOWN"
	CodePaginationInvalid = "PAGINATION_NUMBER_INVALID"
	CodeRangeInvalid      = "RANGE_INVALID"
	CodeDenied            = "DENIED"
	CodeUnauthorized      = "UNAUTHORIZED"
	CodeUnsupported       = "UNSUPPORTED"
	CodeTooManyRequests   = "TOOMANYREQUESTS"
	CodeUnavailable       = "UNAVAILABLE"
	CodeUnknown           = "UNKNOWN"
)

// Error is the one error type handlers return: an OCI code, an HTTP status
// and a message that is safe to send. The cause stays in the log.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when set, is sent as a Retry-After header.
	RetryAfter int
	// header holds headers the error is sent with (Content-Range of a 416).
	header http.Header
	cause  error
}

func newError(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

func (e *Error) withCause(err error) *Error {
	c := *e
	c.cause = err
	return &c
}

func (e *Error) withHeader(k, v string) *Error {
	c := *e
	c.header = c.header.Clone()
	if c.header == nil {
		c.header = http.Header{}
	}
	c.header.Set(k, v)
	return &c
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.cause }

// asWireError turns any handler error into the Error sent to the client.
func asWireError(err error, notFound *Error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, cache.ErrNotFound) {
		return notFound.withCause(err)
	}
	if cache.IsLocal(err) || errors.Is(err, cache.ErrIndexReadOnly) {
		return localError(err)
	}
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return upstreamError(ue, notFound)
	}
	return newError(http.StatusInternalServerError, CodeUnknown, "internal error").withCause(err)
}

// upstreamError maps an upstream failure for a request that the cache could
// not answer.
func upstreamError(ue *upstream.Error, notFound *Error) *Error {
	switch ue.Kind {
	case upstream.NotFound:
		return notFound.withCause(ue)
	case upstream.Denied:
		return newError(http.StatusForbidden, CodeDenied,
			"the upstream registry denied access: the repository may not exist or may need credentials").withCause(ue)
	case upstream.TooManyRequests:
		e := newError(http.StatusTooManyRequests, CodeTooManyRequests, "the upstream registry is rate-limiting pulls and this is not cached").withCause(ue)
		e.RetryAfter = int(ue.RetryAfter.Seconds())
		return e
	case upstream.Invalid:
		return newError(http.StatusBadGateway, CodeUnavailable, "the upstream registry sent an invalid response").withCause(ue)
	case upstream.Canceled:
		return newError(499, CodeUnavailable, "request canceled").withCause(ue)
	}
	return newError(http.StatusServiceUnavailable, CodeUnavailable, "the upstream registry is unreachable and this is not cached").withCause(ue)
}

type wireErrors struct {
	Errors []wireError `json:"errors"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError renders e; it is the only place error bodies are written.
func writeError(w http.ResponseWriter, r *http.Request, e *Error) {
	h := w.Header()
	// Headers set for a success that did not happen: above all, an error
	// must not be cacheable for a year like the blob it is not.
	for _, k := range []string{"Content-Length", "Docker-Content-Digest", "Content-Range", "Etag", "Accept-Ranges", "Cache-Control"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/json")
	if e.Status == http.StatusMethodNotAllowed {
		h.Set("Allow", "GET, HEAD")
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	for k, v := range e.header {
		h[k] = v
	}
	status := e.Status
	if status == 499 { // the client is gone; the status is for the log only
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(wireErrors{Errors: []wireError{{Code: e.Code, Message: e.Message}}})
}
