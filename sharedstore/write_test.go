package sharedstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pullcache/pullcache/cache/blobs"
)

// blobUpstream serves one blob's bytes (which may be wrong for its
// digest) and nothing else.
type blobUpstream struct {
	Upstream
	h    v1.Hash
	body []byte
}

func (u blobUpstream) GetBlob(_ context.Context, _ string, h v1.Hash, offset int64) (io.ReadCloser, int64, error) {
	if h != u.h {
		return nil, 0, errors.New("no such blob")
	}
	return io.NopCloser(bytes.NewReader(u.body[offset:])), int64(len(u.body)), nil
}

func randomBlob(t *testing.T, size int) ([]byte, v1.Hash) {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// teeOutcome reads n bytes of the blob through a writer (all of them when
// n < 0), closes, and returns the write's outcome once it is counted.
func teeOutcome(t *testing.T, s *Store, up blobUpstream, n int64) string {
	t.Helper()
	body, size, err := s.Writer(testRegistry, up).GetBlob(t.Context(), testRepo, up.h, 0)
	if err != nil || size != int64(len(up.body)) {
		t.Fatalf("GetBlob: %d, %v", size, err)
	}
	var got []byte
	if n < 0 {
		got, err = io.ReadAll(body)
	} else {
		got, err = io.ReadAll(io.LimitReader(body, n))
	}
	body.Close()
	if err != nil || !bytes.Equal(got, up.body[:len(got)]) {
		t.Fatalf("the stream itself: %d bytes, %v", len(got), err)
	}
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, o := range []string{"stored", "exists", "abandoned", "slow", "failed"} {
			if testutil.ToFloat64(s.metrics.writes.WithLabelValues("blob", o)) > 0 {
				return o
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no write outcome after 60 s")
		}
		<-tick.C
	}
}

func newTestStore(t *testing.T, gw *gateway) *Store {
	t.Helper()
	s, err := New(gw.tier(t), nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTeeStoresAWholeBlobOfSeveralParts: a blob over one upload part
// streamed whole is in the bucket after, with its link.
func TestTeeStoresAWholeBlobOfSeveralParts(t *testing.T) {
	gw := startGateway(t)
	s := newTestStore(t, gw)
	b, h := randomBlob(t, 20<<20)
	if o := teeOutcome(t, s, blobUpstream{h: h, body: b}, -1); o != "stored" {
		t.Fatalf("outcome %s, want stored", o)
	}
	r, size, err := s.tier.Open(t.Context(), h, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || size != int64(len(b)) || !bytes.Equal(got, b) {
		t.Fatalf("bucket's copy: %d of %d bytes, %v", len(got), size, err)
	}
	waitObject(t, s, linkName(testRegistry, testRepo, h.String()))
}

// TestTeeAbandonsWhatItCannotCheck: a client that stops after the first
// upload part went, and an upstream whose bytes are not the digest's,
// leave nothing in the bucket, no upload behind, and a stream that was
// never disturbed.
func TestTeeAbandonsWhatItCannotCheck(t *testing.T) {
	gw := startGateway(t)
	b, h := randomBlob(t, 12<<20)
	s := newTestStore(t, gw)
	if o := teeOutcome(t, s, blobUpstream{h: h, body: b}, 10<<20); o != "abandoned" {
		t.Errorf("client stopped early: outcome %s, want abandoned", o)
	}
	wrong := bytes.Clone(b)
	wrong[len(wrong)-1]++
	s = newTestStore(t, gw)
	if o := teeOutcome(t, s, blobUpstream{h: h, body: wrong}, -1); o != "failed" {
		t.Errorf("wrong bytes: outcome %s, want failed", o)
	}
	if _, err := s.tier.Stat(t.Context(), h); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("blob in the bucket after both: %v", err)
	}
	if n, err := s.tier.SweepUploads(t.Context(), 0); err != nil || n != 0 {
		t.Errorf("%d uploads left behind (%v), want 0", n, err)
	}
}

// waitObject polls the bucket for object name, for 30 s at most.
func waitObject(t *testing.T, s *Store, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := s.tier.GetObject(t.Context(), name)
		if err == nil {
			return
		}
		if !errors.Is(err, blobs.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("object %s: %v", name, err)
		}
		<-tick.C
	}
}
