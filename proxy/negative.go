package proxy

import (
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// negativeCache remembers, for a short time, that an upstream answered 404
// for a manifest, blob or tag list of one registry and repository, so that
// a herd of clients asking for something missing costs one upstream
// request per TTL. It also remembers that the upstream could not be
// reached, failed (5xx) or rate-limited us (429), but only until that is
// over (upstream.Error.Over: the registry answers again, the Retry-After
// has passed), for the TTL at most: during an outage a herd costs one
// request per object per TTL, and recovery follows the upstream, not the
// TTL. 401 and 403 are not remembered. It lives in memory, bounded; a
// restart forgets it.
type negativeCache struct {
	ttl     time.Duration
	now     func() time.Time
	entries *lru.Cache[string, negativeEntry]
}

type negativeEntry struct {
	until time.Time
	err   error
	// passing, for a failure to reach the upstream, says when it is over.
	passing interface{ Over() bool }
}

// negativeEntries bounds the misses remembered at once; the least recently
// asked are forgotten first.
const negativeEntries = 16384

func newNegativeCache(ttl time.Duration, now func() time.Time) *negativeCache {
	entries, _ := lru.New[string, negativeEntry](negativeEntries)
	return &negativeCache{ttl: ttl, now: now, entries: entries}
}

// negativeKey names one object of one repository: kind is "manifest",
// "blob" or "tags"; ref the tag or digest.
func negativeKey(kind string, repo cache.Repo, ref string) string {
	return kind + " " + repo.String() + " " + ref
}

// lookup returns what is remembered for key (a 404, or a failure to reach
// the upstream that is not over yet), or nil.
func (n *negativeCache) lookup(key string) error {
	if n.ttl <= 0 {
		return nil
	}
	e, ok := n.entries.Get(key)
	if !ok {
		return nil
	}
	if !n.now().Before(e.until) || (e.passing != nil && e.passing.Over()) {
		n.entries.Remove(key)
		return nil
	}
	return e.err
}

// remember keeps err for key if it is an upstream 404, or a failure to
// reach the upstream that can tell when it is over.
func (n *negativeCache) remember(key string, err error) {
	if n.ttl <= 0 || err == nil {
		return
	}
	e := negativeEntry{until: n.now().Add(n.ttl)}
	switch upstream.KindOf(err) {
	case upstream.NotFound:
		e.err = fmt.Errorf("remembered for %s (negative_ttl): %w", n.ttl, err)
	case upstream.Unavailable, upstream.TooManyRequests:
		if !errors.As(err, &e.passing) {
			return
		}
		e.err = fmt.Errorf("remembered until the upstream answers again (%s at most, negative_ttl): %w", n.ttl, err)
	default:
		return
	}
	n.entries.Add(key, e)
}
