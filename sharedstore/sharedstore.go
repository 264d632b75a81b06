// Package sharedstore puts a bucket every cache of a cluster shares between
// the proxy and its upstreams, as two decorators of the upstream client: a
// reader (outermost) that answers blobs and manifests by digest from the
// bucket, and a writer (innermost, around the real registry client) that
// stores what the upstream sends as it streams past.
//
// The bucket holds content by digest, which any repository may name, so
// reading it must not become a way around the upstream's access rules: a
// repository reads an object only through a link object written when the
// upstream served (or confirmed) that digest for that repository. Links are
// per registry and repository; a digest without one is served only after
// the inner upstream's HEAD says the repository has it.
//
// Every failure of the bucket is a miss: the request goes on inward, and a
// write abandoned on an error never disturbs the stream it copies.
package sharedstore

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/cache/blobs/s3"
	"github.com/pullcache/pullcache/upstream"
)

// Upstream is what the decorators need of a registry client: the proxy's
// Upstream, upstream.Source.
type Upstream = upstream.Source

// Store is the shared bucket as this server uses it, for every registry.
type Store struct {
	tier    *s3.Tier
	log     *slog.Logger
	metrics *metrics
	// restUntil is when reads may ask the bucket again (Unix ns) after
	// one failed.
	restUntil atomic.Int64
}

// restFor is how long reads leave the bucket alone after one failed: a
// failed request costs the SDK's retries, seconds that every request
// would pay while the bucket is down.
const restFor = 10 * time.Second

// resting reports whether reads should skip the bucket for now.
func (s *Store) resting() bool { return time.Now().UnixNano() < s.restUntil.Load() }

// rest makes reads skip the bucket for restFor, saying so once per rest.
func (s *Store) rest(err error) {
	now := time.Now()
	if prev := s.restUntil.Swap(now.Add(restFor).UnixNano()); prev < now.UnixNano() {
		s.log.Warn("shared bucket read failed; reads skip it for a while", "for", restFor, "err", err)
	}
}

// New returns the store on tier; log and reg may be nil.
func New(tier *s3.Tier, log *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Store{tier: tier, log: log, metrics: m}, nil
}

// Reader returns up for registry with blobs and manifests by digest read
// from the bucket first. It goes outermost, so that a cluster member
// answers from the bucket before asking the owner.
func (s *Store) Reader(registry string, up Upstream) Upstream {
	return &reader{Upstream: up, s: s, registry: registry}
}

// Writer returns up for registry with what it fetches stored in the
// bucket. It goes innermost, around the client that really asks the
// upstream, so that only the member that fetches writes.
func (s *Store) Writer(registry string, up Upstream) Upstream {
	return &writer{Upstream: up, s: s, registry: registry}
}

// linkName is the object that lets repo of registry read digest d.
func linkName(registry, repo, d string) string {
	return "links/" + registry + "/" + repo + "/" + d
}

// manifestName is the object holding manifest d's media type and bytes.
func manifestName(d string) string { return "manifests/" + d }

// isDigest tells a manifest reference by digest from a tag, which holds
// no colon.
func isDigest(ref string) bool { return strings.Contains(ref, ":") }
