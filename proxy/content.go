package proxy

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// serveContent answers a blob read from content (Range, If-Match,
// If-None-Match, If-Range, HEAD) with http.ServeContent, whose handling of
// these headers is exact, but never lets its plain-text errors out: a 416
// or 412 it decides on is rendered as OCI error JSON like every other
// error on /v2/, a 416 with Content-Range: bytes */SIZE (RFC 9110 15.5.17)
// whether the range was unsatisfiable or malformed.
func serveContent(w *recorder, r *http.Request, size int64, content io.ReadSeeker) {
	http.ServeContent(&contentErrors{recorder: w, r: r, size: size}, r, "", time.Time{}, content)
}

// contentErrors turns the error statuses ServeContent writes into wire
// errors and drops the plain-text bodies that follow them. Embedding the
// recorder keeps io.ReaderFrom (sendfile), Flush and Unwrap.
type contentErrors struct {
	*recorder
	r      *http.Request
	size   int64
	failed bool
}

func (c *contentErrors) WriteHeader(code int) {
	if code < http.StatusBadRequest {
		c.recorder.WriteHeader(code)
		return
	}
	c.failed = true
	c.Header().Del("X-Content-Type-Options") // set by http.Error for its text body
	c.fail(c.r, contentError(code, c.size), nil)
}

func (c *contentErrors) Write(p []byte) (int, error) {
	if c.failed {
		return len(p), nil
	}
	return c.recorder.Write(p)
}

// contentError is the wire error for a status ServeContent decided on.
func contentError(code int, size int64) *Error {
	switch code {
	case http.StatusRequestedRangeNotSatisfiable:
		e := newError(code, CodeRangeInvalid, "the Range header is malformed or asks for bytes past the end of the blob ("+
			strconv.FormatInt(size, 10)+" bytes)")
		return e.withHeader("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
	case http.StatusPreconditionFailed:
		// The spec's list of codes has none for a failed precondition.
		return newError(code, CodeUnsupported, "precondition failed: If-Match names no ETag of this blob (its ETag is its digest)")
	}
	return newError(code, CodeUnknown, http.StatusText(code))
}
