package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/stats"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	cache    *prometheus.CounterVec
	fills    prometheus.Counter
	joins    prometheus.Counter
	prefetch *prometheus.CounterVec
}

// newMetrics creates the server's metrics, labelled by route and outcome,
// never by path, and registers them with reg (if not nil).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_http_requests_total", Help: "Registry API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pullcache_http_request_duration_seconds", Help: "Time to answer a request, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_http_response_bytes_total", Help: "Response body bytes sent, by route.",
		}, []string{"route"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_cache_requests_total", Help: "Manifest and blob answers by where they came from (hit, miss, stale).",
		}, []string{"kind", "result"}),
		fills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pullcache_upstream_fills_total", Help: "Blob fetches started from an upstream.",
		}),
		joins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pullcache_fill_joins_total", Help: "Blob requests served by a fill already in flight, which another request or a prefetch started.",
		}),
		prefetch: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullcache_prefetch_blobs_total", Help: "Blobs prefetched, by result (ok, failed).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.bytes, m.cache, m.fills, m.joins, m.prefetch} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// recorder wraps the ResponseWriter to learn status and size. It keeps
// io.ReaderFrom so cached blobs still go out with sendfile.
type recorder struct {
	http.ResponseWriter
	s        *Server
	r        *http.Request
	start    time.Time
	status   int
	bytes    int64
	route    string
	registry string
	user     string // the authenticated user, when logins are on
	src      source
	err      error
	notes    []slog.Attr // extra log fields
}

func (s *Server) observe(w http.ResponseWriter, r *http.Request) *recorder {
	return &recorder{ResponseWriter: w, s: s, r: r, start: time.Now(), route: "other"}
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.bytes == 0 {
		// Headers first: with nothing sent yet, net/http would copy the
		// body's first 512 bytes through a buffer (a read and a copy)
		// before it switches to sendfile.
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
	n, err := io.Copy(w.ResponseWriter, src)
	w.bytes += n
	return n, err
}

// Flush sends buffered bytes; the first call sends the headers (a 200 if
// none was written).
func (w *recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// annotate adds fields to the request's log line.
func (w *recorder) annotate(attrs ...slog.Attr) { w.notes = append(w.notes, attrs...) }

func (w *recorder) setSource(src source) {
	w.src = src
	w.Header().Set("X-Pullcache", string(src))
}

// fail writes the error response for err.
func (w *recorder) fail(r *http.Request, err error, notFound *Error) {
	e := asWireError(err, notFound)
	w.err = e
	if w.status != 0 {
		// Headers are out: the only honest thing left is to break the
		// connection.
		panic(http.ErrAbortHandler)
	}
	writeError(w, r, e)
}

// finish writes the request's log line and metrics; it also runs while an
// aborted response unwinds.
func (w *recorder) finish() {
	p := recover()
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	outcome := strconv.Itoa(status)
	if p != nil {
		outcome = "aborted"
	}
	m := w.s.metrics
	m.requests.WithLabelValues(w.route, w.r.Method, outcome).Inc()
	m.duration.WithLabelValues(w.route).Observe(time.Since(w.start).Seconds())
	m.bytes.WithLabelValues(w.route).Add(float64(w.bytes))
	w.s.opts.Stats.Answered(w.answer(status, p != nil))
	w.log(outcome)
	if p != nil {
		panic(p)
	}
}

func (w *recorder) log(outcome string) {
	attrs := []slog.Attr{
		slog.String("method", w.r.Method), slog.String("path", w.r.URL.Path),
		slog.String("status", outcome), slog.Int64("bytes", w.bytes),
		slog.Duration("duration", time.Since(w.start)), slog.String("route", w.route),
	}
	if w.registry != "" {
		attrs = append(attrs, slog.String("registry", w.registry))
	}
	if w.s.opts.Auth != nil {
		// Who asked, for the access decision this line records; never
		// a credential.
		attrs = append(attrs, slog.String("user", w.user), slog.String("client", w.r.RemoteAddr))
	}
	if w.src != "" {
		attrs = append(attrs, slog.String("cache", string(w.src)))
	}
	attrs = append(attrs, w.notes...)
	level := slog.LevelInfo
	if w.err != nil {
		attrs = append(attrs, slog.String("err", w.err.Error()))
		if e, ok := w.err.(*Error); ok && e.Status >= 500 {
			level = slog.LevelWarn
		}
	}
	if outcome == "aborted" {
		level = slog.LevelWarn
	}
	w.s.log.LogAttrs(w.r.Context(), level, "request", attrs...)
}

// answer is what the statistics keep of the request.
func (w *recorder) answer(status int, aborted bool) stats.Answer {
	a := stats.Answer{Route: w.route, Method: w.r.Method, Status: status, Source: string(w.src),
		Bytes: w.bytes, Aborted: aborted, Path: w.r.URL.Path}
	if w.err != nil {
		a.Error = w.err.Error()
	} else if aborted {
		a.Error = "transfer aborted"
	}
	return a
}
