// Package stats keeps live, bounded statistics of what the mirror serves:
// totals since start, one point per minute for the last hour and one per
// hour for the last day (fixed ring buffers, so memory does not grow with
// uptime or traffic), and the most recent errors. The registry API (proxy)
// fills a Recorder; the admin API (GET /admin/stats) and the console read
// it. Neither of those may import the other, which is why this small
// package sits between them.
//
// It is not a metrics system: Prometheus metrics at /metrics are the
// durable, scrapeable record. This is what an operator looking at the
// console right now needs, and it is lost on restart.
package stats

import (
	"sync"
	"time"
)

// Counts are what the mirror did, over some span of time.
type Counts struct {
	// Requests is every registry API request answered.
	Requests int64 `json:"requests"`
	// Hits, Misses and Stale count manifest and blob answers by where they
	// came from: the cache, the upstream, or the cache because the upstream
	// could not confirm a tag.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	Stale  int64 `json:"stale"`
	// ManifestGets and BlobGets are the GETs clients sent.
	ManifestGets int64 `json:"manifest_gets"`
	BlobGets     int64 `json:"blob_gets"`
	// ManifestGetsFromCache and BlobGetsFromCache are those of them
	// answered from the cache (hits and stale answers): GETs that did not
	// go upstream, which is what Docker Hub's pull limit counts.
	ManifestGetsFromCache int64 `json:"manifest_gets_from_cache"`
	BlobGetsFromCache     int64 `json:"blob_gets_from_cache"`
	// UpstreamManifestGets and UpstreamBlobGets are the GETs the mirror sent
	// upstream (prefetch included); UpstreamHeads its HEADs (revalidations,
	// which Docker Hub does not count against the pull limit).
	UpstreamManifestGets int64 `json:"upstream_manifest_gets"`
	UpstreamBlobGets     int64 `json:"upstream_blob_gets"`
	UpstreamHeads        int64 `json:"upstream_heads"`
	// BytesServed is every response body byte sent; BytesFromCache the part
	// sent from cache (hits and stale answers); BytesFetched the bytes read
	// from upstreams.
	BytesServed    int64 `json:"bytes_served"`
	BytesFromCache int64 `json:"bytes_from_cache"`
	BytesFetched   int64 `json:"bytes_fetched"`
	// Errors are answers with a 5xx status or a transfer broken off.
	Errors int64 `json:"errors"`
}

// HitRatio is the share of manifest and blob answers that came from the
// cache (stale ones included), or 0 before there are any.
func (c Counts) HitRatio() float64 {
	n := c.Hits + c.Misses + c.Stale
	if n == 0 {
		return 0
	}
	return float64(c.Hits+c.Stale) / float64(n)
}

// ManifestGetsSaved is how many manifest GETs clients sent that never
// reached an upstream: what Docker Hub would have counted against its pull
// limit without the mirror, less what it did count.
func (c Counts) ManifestGetsSaved() int64 { return max(c.ManifestGets-c.UpstreamManifestGets, 0) }

// BlobGetsSaved is the same for blobs.
func (c Counts) BlobGetsSaved() int64 { return max(c.BlobGets-c.UpstreamBlobGets, 0) }

func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.Hits += o.Hits
	c.Misses += o.Misses
	c.Stale += o.Stale
	c.ManifestGets += o.ManifestGets
	c.BlobGets += o.BlobGets
	c.ManifestGetsFromCache += o.ManifestGetsFromCache
	c.BlobGetsFromCache += o.BlobGetsFromCache
	c.UpstreamManifestGets += o.UpstreamManifestGets
	c.UpstreamBlobGets += o.UpstreamBlobGets
	c.UpstreamHeads += o.UpstreamHeads
	c.BytesServed += o.BytesServed
	c.BytesFromCache += o.BytesFromCache
	c.BytesFetched += o.BytesFetched
	c.Errors += o.Errors
}

// Answer is one registry API request, as the proxy answered it.
type Answer struct {
	// Route is "manifest", "blob", "tags", "base" or "other".
	Route  string
	Method string
	Status int
	// Source is "hit", "miss", "stale", or "" when nothing was served.
	Source string
	// Bytes is the size of the body sent.
	Bytes int64
	// Aborted: the transfer was broken off after the headers were sent.
	Aborted bool
	// Path and Error describe a failure, for the recent errors.
	Path  string
	Error string
}

// ErrorEvent is one failed answer.
type ErrorEvent struct {
	At     time.Time `json:"at"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	// Error is the failure as the log has it.
	Error string `json:"error"`
}

// Point is the counts of one minute or one hour.
type Point struct {
	Start time.Time `json:"start"`
	Counts
}

// Snapshot is everything the Recorder holds, at one moment.
type Snapshot struct {
	Started time.Time `json:"started"`
	At      time.Time `json:"at"`
	Total   Counts    `json:"total"`
	// Minutes are the last 60 minutes, oldest first, the current one last;
	// Hours the last 24 hours likewise.
	Minutes []Point `json:"minutes"`
	Hours   []Point `json:"hours"`
	// Errors are the most recent failed answers, newest first.
	Errors []ErrorEvent `json:"errors"`
}

// Sizes of the rings.
const (
	minutes   = 60
	hours     = 24
	maxErrors = 50
)

// ring is a fixed number of buckets of one width, indexed by time.
type ring struct {
	width   time.Duration
	buckets []bucket
}

type bucket struct {
	slot int64 // unix time / width; a bucket of another slot is stale
	c    Counts
}

func newRing(n int, width time.Duration) ring {
	return ring{width: width, buckets: make([]bucket, n)}
}

func (r *ring) add(at time.Time, c Counts) {
	slot := at.UnixNano() / int64(r.width)
	b := &r.buckets[slot%int64(len(r.buckets))]
	if b.slot != slot {
		*b = bucket{slot: slot}
	}
	b.c.add(c)
}

// points lists the ring's span ending at the bucket of at, zero-filled.
func (r *ring) points(at time.Time) []Point {
	n := int64(len(r.buckets))
	last := at.UnixNano() / int64(r.width)
	out := make([]Point, 0, n)
	for slot := last - n + 1; slot <= last; slot++ {
		p := Point{Start: time.Unix(0, slot*int64(r.width)).UTC()}
		if b := r.buckets[slot%n]; b.slot == slot {
			p.Counts = b.c
		}
		out = append(out, p)
	}
	return out
}

// Recorder collects statistics. It is safe for concurrent use; the methods
// of a nil *Recorder do nothing, so a server without one pays nothing.
type Recorder struct {
	now     func() time.Time
	started time.Time

	mu      sync.Mutex
	total   Counts
	minutes ring
	hours   ring
	errors  [maxErrors]ErrorEvent
	nerrs   int // errors recorded since start; the ring holds the last maxErrors
}

// New returns a Recorder reading the clock now (nil: time.Now).
func New(now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{now: now, started: now(), minutes: newRing(minutes, time.Minute), hours: newRing(hours, time.Hour)}
}

func (r *Recorder) record(c Counts) {
	at := r.now()
	r.mu.Lock()
	r.total.add(c)
	r.minutes.add(at, c)
	r.hours.add(at, c)
	r.mu.Unlock()
}

// Answered records one answer of the registry API.
func (r *Recorder) Answered(a Answer) {
	if r == nil {
		return
	}
	c := Counts{Requests: 1, BytesServed: a.Bytes}
	switch a.Source {
	case "hit":
		c.Hits, c.BytesFromCache = 1, a.Bytes
	case "miss":
		c.Misses = 1
	case "stale":
		c.Stale, c.BytesFromCache = 1, a.Bytes
	}
	if a.Method == "GET" {
		cached := int64(0)
		if c.Hits+c.Stale > 0 {
			cached = 1
		}
		switch a.Route {
		case "manifest":
			c.ManifestGets, c.ManifestGetsFromCache = 1, cached
		case "blob":
			c.BlobGets, c.BlobGetsFromCache = 1, cached
		}
	}
	failed := a.Status >= 500 || a.Aborted
	if failed {
		c.Errors = 1
	}
	r.record(c)
	if failed {
		r.addError(ErrorEvent{At: r.now().UTC(), Method: a.Method, Path: a.Path, Status: a.Status, Error: a.Error})
	}
}

func (r *Recorder) addError(e ErrorEvent) {
	r.mu.Lock()
	r.errors[r.nerrs%maxErrors] = e
	r.nerrs++
	r.mu.Unlock()
}

// UpstreamGet records a GET the mirror sent upstream: kind is "manifest",
// "blob" or "tags"; bytes is what it read (more may follow with Fetched).
func (r *Recorder) UpstreamGet(kind string, bytes int64) {
	if r == nil {
		return
	}
	c := Counts{BytesFetched: bytes}
	switch kind {
	case "manifest":
		c.UpstreamManifestGets = 1
	case "blob":
		c.UpstreamBlobGets = 1
	}
	r.record(c)
}

// UpstreamHead records a HEAD the mirror sent upstream.
func (r *Recorder) UpstreamHead() {
	if r == nil {
		return
	}
	r.record(Counts{UpstreamHeads: 1})
}

// Fetched records bytes read from an upstream, as they arrive, so the
// per-minute series shows a long download when it happens.
func (r *Recorder) Fetched(n int64) {
	if r == nil || n == 0 {
		return
	}
	r.record(Counts{BytesFetched: n})
}

// Totals returns the counts since start: cheaper than a Snapshot, for a
// metrics scrape.
func (r *Recorder) Totals() Counts {
	if r == nil {
		return Counts{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Snapshot returns a copy of everything recorded.
func (r *Recorder) Snapshot() Snapshot {
	if r == nil {
		return Snapshot{}
	}
	at := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{Started: r.started.UTC(), At: at.UTC(), Total: r.total,
		Minutes: r.minutes.points(at), Hours: r.hours.points(at), Errors: []ErrorEvent{}}
	for i := 1; i <= min(r.nerrs, maxErrors); i++ {
		s.Errors = append(s.Errors, r.errors[(r.nerrs-i)%maxErrors])
	}
	return s
}
