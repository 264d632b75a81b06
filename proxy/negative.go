package proxy

import (
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/upstream"
)

// negativeCache remembers, for a short time, that an upstream answered 404
// for a manifest, blob or tag list of one registry and repository, so that
// a herd of clients asking for something missing costs one upstream
// request per TTL. Only a 404 is remembered: 401, 403, 429, 5xx and
// network errors say nothing about whether the object exists. It lives in
// memory, bounded; a restart forgets it.
type negativeCache struct {
	ttl     time.Duration
	now     func() time.Time
	entries *lru.Cache[string, negativeEntry]
}

type negativeEntry struct {
	until time.Time
	err   error
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

// lookup returns the remembered 404 for key, or nil.
func (n *negativeCache) lookup(key string) error {
	if n.ttl <= 0 {
		return nil
	}
	e, ok := n.entries.Get(key)
	if !ok {
		return nil
	}
	if !n.now().Before(e.until) {
		n.entries.Remove(key)
		return nil
	}
	return e.err
}

// remember keeps err for key if it is an upstream 404.
func (n *negativeCache) remember(key string, err error) {
	if n.ttl <= 0 || err == nil || upstream.KindOf(err) != upstream.NotFound {
		return
	}
	now := n.now()
	n.entries.Add(key, negativeEntry{
		until: now.Add(n.ttl),
		err:   fmt.Errorf("remembered for %s (negative_ttl): %w", n.ttl, err),
	})
}
