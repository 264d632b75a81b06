package stats

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 4, 10, 0, 30, 0, time.UTC)} }

func TestTotalsAndDerivedFigures(t *testing.T) {
	r := New(newClock().now)
	r.Answered(Answer{Route: "manifest", Method: "GET", Status: 200, Source: "miss", Bytes: 100})
	r.UpstreamGet("manifest", 100)
	for range 3 {
		r.Answered(Answer{Route: "manifest", Method: "GET", Status: 200, Source: "hit", Bytes: 100})
	}
	r.Answered(Answer{Route: "manifest", Method: "HEAD", Status: 200, Source: "hit"})
	r.Answered(Answer{Route: "blob", Method: "GET", Status: 200, Source: "stale", Bytes: 1000})
	got := r.Snapshot().Total
	want := Counts{Requests: 6, Hits: 4, Misses: 1, Stale: 1, ManifestGets: 4, BlobGets: 1,
		ManifestGetsFromCache: 3, BlobGetsFromCache: 1,
		UpstreamManifestGets: 1, BytesServed: 1400, BytesFromCache: 1300, BytesFetched: 100}
	if got != want {
		t.Fatalf("totals\n got %+v\nwant %+v", got, want)
	}
	if tot := r.Totals(); tot != want {
		t.Errorf("Totals() %+v, want the snapshot's %+v", tot, want)
	}
	if r := got.HitRatio(); r != 5.0/6 {
		t.Errorf("hit ratio %v, want 5/6", r)
	}
	if n := got.ManifestGetsSaved(); n != 3 {
		t.Errorf("manifest GETs saved %d, want 3", n)
	}
	if n := got.BlobGetsSaved(); n != 1 {
		t.Errorf("blob GETs saved %d, want 1", n)
	}
}

func TestSavedNeverNegative(t *testing.T) {
	c := Counts{ManifestGets: 1, UpstreamManifestGets: 3}
	if n := c.ManifestGetsSaved(); n != 0 {
		t.Errorf("saved %d, want 0 when prefetch fetched more than clients asked", n)
	}
	if r := (Counts{}).HitRatio(); r != 0 {
		t.Errorf("hit ratio of nothing %v", r)
	}
}

func TestSeriesAreBoundedAndZeroFilled(t *testing.T) {
	c := newClock()
	r := New(c.now)
	r.Fetched(10)
	c.advance(2 * time.Minute)
	r.Fetched(5)
	s := r.Snapshot()
	if len(s.Minutes) != minutes || len(s.Hours) != hours {
		t.Fatalf("%d minutes, %d hours", len(s.Minutes), len(s.Hours))
	}
	last := s.Minutes[len(s.Minutes)-1]
	if last.BytesFetched != 5 {
		t.Errorf("current minute %d bytes, want 5", last.BytesFetched)
	}
	if b := s.Minutes[len(s.Minutes)-3].BytesFetched; b != 10 {
		t.Errorf("two minutes ago %d bytes, want 10", b)
	}
	if b := s.Minutes[len(s.Minutes)-2].BytesFetched; b != 0 {
		t.Errorf("a quiet minute has %d bytes", b)
	}
	if want := time.Date(2026, 3, 4, 10, 2, 0, 0, time.UTC); !last.Start.Equal(want) {
		t.Errorf("current minute starts %s, want %s", last.Start, want)
	}
	if h := s.Hours[len(s.Hours)-1].BytesFetched; h != 15 {
		t.Errorf("current hour %d bytes, want 15", h)
	}
	// An hour later the minute ring has forgotten both; the hour ring not.
	c.advance(time.Hour)
	s = r.Snapshot()
	for _, p := range s.Minutes {
		if p.BytesFetched != 0 {
			t.Fatalf("minute %s still holds %d bytes an hour later", p.Start, p.BytesFetched)
		}
	}
	if h := s.Hours[len(s.Hours)-2].BytesFetched; h != 15 {
		t.Errorf("previous hour %d bytes, want 15", h)
	}
	if s.Total.BytesFetched != 15 {
		t.Errorf("total %d", s.Total.BytesFetched)
	}
}

func TestRecentErrorsNewestFirstAndBounded(t *testing.T) {
	r := New(newClock().now)
	for i := range maxErrors + 5 {
		r.Answered(Answer{Route: "blob", Method: "GET", Status: 503, Path: fmt.Sprintf("/v2/x/blobs/%d", i)})
	}
	r.Answered(Answer{Route: "blob", Method: "GET", Status: 404})
	r.Answered(Answer{Route: "blob", Method: "GET", Status: 200, Aborted: true, Path: "/aborted"})
	s := r.Snapshot()
	if len(s.Errors) != maxErrors {
		t.Fatalf("%d errors kept, want %d", len(s.Errors), maxErrors)
	}
	if s.Errors[0].Path != "/aborted" {
		t.Errorf("newest error %q, want the aborted transfer", s.Errors[0].Path)
	}
	if s.Errors[1].Path != fmt.Sprintf("/v2/x/blobs/%d", maxErrors+4) {
		t.Errorf("second newest %q", s.Errors[1].Path)
	}
	if s.Total.Errors != maxErrors+6 {
		t.Errorf("error count %d, want %d (a 404 is no error)", s.Total.Errors, maxErrors+6)
	}
}

func TestNilRecorderDoesNothing(t *testing.T) {
	var r *Recorder
	r.Answered(Answer{Status: 500})
	r.UpstreamGet("blob", 1)
	r.UpstreamHead()
	r.Fetched(1)
	if s := r.Snapshot(); s.Total != (Counts{}) {
		t.Errorf("nil recorder snapshot %+v", s)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := New(nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				r.Answered(Answer{Route: "blob", Method: "GET", Status: 200, Source: "hit", Bytes: 1})
				r.Fetched(1)
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			_ = r.Snapshot()
		}
	})
	wg.Wait()
	if s := r.Snapshot(); s.Total.Requests != 8000 {
		t.Errorf("%d requests, want 8000", s.Total.Requests)
	}
}

func BenchmarkAnswered(b *testing.B) {
	r := New(nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Answered(Answer{Route: "blob", Method: "GET", Status: 200, Source: "hit", Bytes: 600 << 10})
		}
	})
}
