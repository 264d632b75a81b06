package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Kind classifies an upstream failure by what the mirror should do about it.
type Kind int

const (
	// Unavailable: the registry could not be reached or failed (5xx,
	// timeouts, refused connections). Serve what is cached.
	Unavailable Kind = iota
	// NotFound: the registry says the object does not exist.
	NotFound
	// Denied: the registry refused access (401/403 after authenticating).
	Denied
	// TooManyRequests: the registry rate-limited us (429).
	TooManyRequests
	// Invalid: the registry answered with something unusable (a manifest
	// whose bytes do not match its digest, an oversized manifest).
	Invalid
	// Canceled: the caller's context ended.
	Canceled
)

func (k Kind) String() string {
	return [...]string{"unavailable", "not_found", "denied", "too_many_requests", "invalid", "canceled"}[k]
}

// Error is an upstream failure with its registry, operation and kind. Its
// message never holds credentials (go-containerregistry redacts URLs).
type Error struct {
	Registry, Endpoint, Op, Repo string
	Kind                         Kind
	// RetryAfter is the delay a 429 asked for, if any.
	RetryAfter time.Duration
	Err        error

	reg *Registry // whose health says when the failure is over (Over)
	at  time.Time // when it failed
}

func (e *Error) Error() string {
	return fmt.Sprintf("upstream %s (%s): %s %s: %v", e.Registry, e.Endpoint, e.Op, e.Repo, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf classifies err; an error that is not an *Error is Unavailable.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	return Unavailable
}

var errInvalid = errors.New("invalid response")

func isInvalid(err error) bool { return errors.Is(err, errInvalid) }

func (r *Registry) wrap(op, repo, endpoint string, err error) error {
	return r.wrapResp(op, repo, endpoint, err, nil)
}

// wrapResp is wrap with the response that failed, whose Retry-After a 429
// carries.
func (r *Registry) wrapResp(op, repo, endpoint string, err error, resp *http.Response) error {
	var prev *Error
	if errors.As(err, &prev) {
		return err
	}
	e := &Error{Registry: r.name, Endpoint: endpoint, Op: op, Repo: repo, Err: err, Kind: classify(err), reg: r, at: time.Now()}
	if resp != nil && e.Kind == TooManyRequests {
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
	}
	return e
}

func classify(err error) Kind {
	var te *transport.Error
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, errInvalid):
		return Invalid
	case errors.Is(err, errPrivateAddress):
		return Denied
	case errors.As(err, &te):
		return classifyStatus(te.StatusCode)
	}
	// Anything else (connection errors, timeouts, TLS failures) means the
	// registry could not be reached.
	return Unavailable
}

func classifyStatus(code int) Kind {
	switch {
	case code == http.StatusNotFound:
		return NotFound
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return Denied
	case code == http.StatusTooManyRequests:
		return TooManyRequests
	case code >= 500:
		return Unavailable
	}
	return Invalid
}

func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
