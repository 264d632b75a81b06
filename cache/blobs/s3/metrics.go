package s3

import (
	"context"
	"io"
	"net/http"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// counters count the tier's requests and bytes: what a cluster's bucket
// costs, and where it fails.
type counters struct {
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
}

func newCounters(reg prometheus.Registerer) *counters {
	m := &counters{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullcache_s3_requests_total",
			Help: "Requests to the S3 tier's bucket, after the SDK's retries, by operation and outcome (ok, not_found, condition_failed, error)."},
			[]string{"operation", "outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullcache_s3_bytes_total",
			Help: "Bytes of blobs and objects sent to or received from the S3 tier's bucket, by direction (sent, received)."},
			[]string{"direction"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.bytes)
	}
	return m
}

// count is an SDK middleware counting each operation once, whatever its
// retries, by its outcome.
func (m *counters) count(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("pullcacheCount",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			m.requests.WithLabelValues(awsmiddleware.GetOperationName(ctx), outcome(err)).Inc()
			return out, md, err
		}), middleware.After)
}

// outcome is a bounded label for a request's result.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case status(err) == http.StatusNotFound:
		return "not_found"
	case conditionFailed(err):
		return "condition_failed"
	}
	return "error"
}

func (m *counters) sent(n int)     { m.bytes.WithLabelValues("sent").Add(float64(n)) }
func (m *counters) received(n int) { m.bytes.WithLabelValues("received").Add(float64(n)) }

// countingBody counts the bytes read from a blob's body as received.
type countingBody struct {
	io.ReadCloser
	m *counters
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.m.received(n)
	return n, err
}
