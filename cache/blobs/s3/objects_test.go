package s3

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/cache/blobs/blobstest"
)

func TestObjects(t *testing.T) {
	tier := startVersitygw(t).tier(t)
	ctx := t.Context()
	const name = "tags/docker.io/library/alpine/latest"
	if _, err := tier.GetObject(ctx, name); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("get before create: %v, want ErrNotFound", err)
	}
	etag, err := tier.CreateObject(ctx, name, []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tier.CreateObject(ctx, name, []byte("other")); !errors.Is(err, blobs.ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	obj, err := tier.GetObject(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Data) != "v1" {
		t.Errorf("get: %q, want v1", obj.Data)
	}
	if obj.ETag != etag {
		t.Errorf("get: ETag %s, create said %s", obj.ETag, etag)
	}
	etag2, err := tier.UpdateObject(ctx, name, []byte("v2"), etag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tier.UpdateObject(ctx, name, []byte("v3"), etag); !errors.Is(err, ErrChanged) {
		t.Errorf("update with a stale ETag: %v, want ErrChanged", err)
	}
	if obj, _ := tier.GetObject(ctx, name); string(obj.Data) != "v2" {
		t.Errorf("after a refused update: %q, want v2", obj.Data)
	}
	if err := tier.DeleteObject(ctx, name, etag); !errors.Is(err, ErrChanged) {
		t.Errorf("delete with a stale ETag: %v, want ErrChanged", err)
	}
	if err := tier.DeleteObject(ctx, name, etag2); err != nil {
		t.Fatal(err)
	}
	if _, err := tier.GetObject(ctx, name); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if _, err := tier.UpdateObject(ctx, name, []byte("v4"), etag2); !errors.Is(err, blobs.ErrNotFound) && !errors.Is(err, ErrChanged) {
		t.Errorf("update of a deleted object: %v, want ErrNotFound or ErrChanged", err)
	}
}

// TestSweepUploads leaves a multipart upload as a member that died would,
// and sweeps it once it is older than the age given, not before.
func TestSweepUploads(t *testing.T) {
	tier := startVersitygw(t).tier(t)
	ctx := t.Context()
	if _, err := tier.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &tier.bucket, Key: aws.String(tier.prefix + "blobs/sha256/abandoned"),
	}); err != nil {
		t.Fatal(err)
	}
	n, err := tier.SweepUploads(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("a sweep of uploads older than an hour aborted %d", n)
	}
	// Initiated times are whole seconds: poll until the upload is over a
	// second old by the server's clock.
	n = pollUntil(t, 10*time.Second, func() int {
		n, err := tier.SweepUploads(ctx, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return n
	})
	if n != 1 {
		t.Errorf("sweep aborted %d uploads, want 1", n)
	}
}

// pollUntil calls f every 100 ms until it returns non-zero or limit passes,
// and returns its last result.
func pollUntil(t *testing.T, limit time.Duration, f func() int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if n := f(); n != 0 {
			return n
		}
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
		}
	}
}

// TestMetrics counts a tier's requests by outcome and its bytes.
func TestMetrics(t *testing.T) {
	s := startVersitygw(t)
	reg := prometheus.NewRegistry()
	tier, err := New(t.Context(), Config{Endpoint: s.endpoint, Bucket: testBucket, Prefix: "metrics", PathStyle: true, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	b, h := blobstest.Blob(t, 3000, 1)
	if _, err := tier.Stat(t.Context(), h); !errors.Is(err, blobs.ErrNotFound) {
		t.Fatal(err)
	}
	put(t, tier, h, b)
	if _, err := tier.CreateObject(t.Context(), "x", []byte("12345")); err != nil {
		t.Fatal(err)
	}
	if _, err := tier.CreateObject(t.Context(), "x", []byte("12345")); !errors.Is(err, blobs.ErrExists) {
		t.Fatal(err)
	}
	rc, _, err := tier.Open(t.Context(), h, 1000)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	for _, c := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{tier.counters.requests.WithLabelValues("HeadObject", "not_found"), 1},
		{tier.counters.requests.WithLabelValues("PutObject", "ok"), 2},
		{tier.counters.requests.WithLabelValues("PutObject", "condition_failed"), 1},
		{tier.counters.requests.WithLabelValues("GetObject", "ok"), 1},
		{tier.counters.bytes.WithLabelValues("sent"), 3005},
		{tier.counters.bytes.WithLabelValues("received"), 2000},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s: %v, want %v", metricName(c.c), got, c.want)
		}
	}
}

// metricName names a counter with its labels, for messages.
func metricName(c prometheus.Collector) string {
	ch := make(chan *prometheus.Desc, 1)
	c.Describe(ch)
	return (<-ch).String()
}
