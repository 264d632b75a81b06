package upstream

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Retry is how failed idempotent requests are retried on one endpoint.
type Retry struct {
	// Attempts is the number of tries per endpoint, at least 1.
	Attempts int
	// Backoff is the first delay; it doubles each attempt, with jitter.
	Backoff time.Duration
	// MaxRetryAfter is the longest Retry-After a 429 is waited out for; a
	// longer one fails at once (and the client is told to come back).
	MaxRetryAfter time.Duration
}

// DefaultRetry: three tries, 200 ms then 400 ms (±50%), Retry-After up to 10 s.
var DefaultRetry = Retry{Attempts: 3, Backoff: 200 * time.Millisecond, MaxRetryAfter: 10 * time.Second}

// order lists the endpoints to try: healthy ones first, in configured
// order, then those that failed recently (better than nothing).
func (r *Registry) order() []*endpoint {
	out := make([]*endpoint, 0, len(r.endpoints))
	var later []*endpoint
	for _, ep := range r.endpoints {
		if ep.health.down() {
			later = append(later, ep)
		} else {
			out = append(out, ep)
		}
	}
	return append(out, later...)
}

// do sends an idempotent request for repo to the first endpoint that
// answers, retrying each as the policy says, and checks the response: a
// status not in codes becomes a classified *Error. The response holds a
// concurrency slot until its body is closed.
func (r *Registry) do(ctx context.Context, method, repo, pathAndQuery string, header http.Header, codes ...int) (*http.Response, error) {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, r.wrap(method, repo, "", ctx.Err())
	}
	var err error
	for _, ep := range r.order() {
		var resp *http.Response
		resp, err = r.tryEndpoint(ctx, ep, method, repo, pathAndQuery, header, codes)
		if err == nil || answered(err) {
			r.note(ep, nil)
		}
		if err == nil {
			resp.Body = &release{ReadCloser: resp.Body, sem: r.sem}
			return resp, nil
		}
		if KindOf(err) != Unavailable {
			break
		}
		r.note(ep, err)
	}
	<-r.sem
	return nil, err
}

func (r *Registry) tryEndpoint(ctx context.Context, ep *endpoint, method, repo, pathAndQuery string, header http.Header, codes []int) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := r.once(ctx, ep, method, repo, pathAndQuery, header, codes)
		if err == nil {
			return resp, nil
		}
		wait, retry := r.retryAfter(err, attempt)
		// An endpoint known to be failing is not retried at once: the
		// probes say when it answers again.
		retry = retry && ep.health.current() != StateFailing
		// A 404 is an answer, not a failure: the request's own log line
		// reports it.
		level := slog.LevelWarn
		if KindOf(err) == NotFound {
			level = slog.LevelDebug
		}
		r.log.Log(ctx, level, "upstream request failed", "registry", r.name, "endpoint", ep.host, "op", method,
			"repo", repo, "attempt", attempt, "kind", KindOf(err).String(), "retry_in", wait, "err", err)
		if !retry {
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, r.wrap(method, repo, ep.host, ctx.Err())
		}
	}
}

// retryAfter says whether and after how long a failed attempt is retried.
func (r *Registry) retryAfter(err error, attempt int) (time.Duration, bool) {
	if attempt >= r.retry.Attempts {
		return 0, false
	}
	switch e, _ := err.(*Error); {
	case e == nil:
		return 0, false
	case e.Kind == TooManyRequests:
		return e.RetryAfter, e.RetryAfter <= r.retry.MaxRetryAfter
	case e.Kind == Unavailable:
		d := r.retry.Backoff << (attempt - 1)
		return d/2 + rand.N(d+1), true
	}
	return 0, false
}

func (r *Registry) once(ctx context.Context, ep *endpoint, method, repo, pathAndQuery string, header http.Header, codes []int) (*http.Response, error) {
	c, err := r.client(ctx, ep, repo)
	if err != nil {
		return nil, r.wrap("authenticate", repo, ep.host, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url(ep, pathAndQuery), nil)
	if err != nil {
		return nil, r.wrap(method, repo, ep.host, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, r.wrap(method, repo, ep.host, err)
	}
	if err := transport.CheckError(resp, codes...); err != nil {
		resp.Body.Close()
		return nil, r.wrapResp(method, repo, ep.host, err, resp)
	}
	return resp, nil
}

// release frees a concurrency slot when the body is closed.
type release struct {
	io.ReadCloser
	sem  chan struct{}
	once sync.Once
}

func (b *release) Close() error {
	b.once.Do(func() { <-b.sem })
	return b.ReadCloser.Close()
}
