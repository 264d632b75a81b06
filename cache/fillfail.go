package cache

import (
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	lru "github.com/hashicorp/golang-lru/v2"
)

// RecentFailure is the error of the finished fill StartFill returns for a
// blob whose fill from the same origin failed a moment ago: the blob is
// not fetched again before Until, so a broken or corrupt upstream costs
// one transfer per backoff, not one per request. Err is that fill's error.
type RecentFailure struct {
	Err   error
	Until time.Time
}

func (e *RecentFailure) Error() string {
	return fmt.Sprintf("the last fill of this blob failed; it is not retried before %s: %v", e.Until.Format(time.RFC3339), e.Err)
}

func (e *RecentFailure) Unwrap() error { return e.Err }

// maxFillBackoff bounds the wait before a blob whose fills keep failing is
// tried again.
const maxFillBackoff = 5 * time.Minute

// failureEntries bounds the failures remembered at once.
const failureEntries = 4096

type failureKey struct {
	digest v1.Hash
	origin string
}

type failure struct {
	err   error
	count int // consecutive failures
	until time.Time
}

// failures remembers the fills that failed recently, per digest and
// origin, with a backoff that doubles with each consecutive failure from
// base up to maxFillBackoff. A fill that succeeds forgets its failures.
type failures struct {
	base    time.Duration
	entries *lru.Cache[failureKey, failure]
}

func newFailures(base time.Duration) *failures {
	entries, _ := lru.New[failureKey, failure](failureEntries)
	return &failures{base: base, entries: entries}
}

// note records how a fill ended. Misses and a closing store are not
// failures of the blob (the proxy remembers misses per repository), and a
// failure of the mirror's own disk is not the source's: the first request
// after space returns fetches.
func (fs *failures) note(h v1.Hash, origin string, err error, now time.Time) {
	k := failureKey{h, origin}
	if err == nil {
		fs.entries.Remove(k)
		return
	}
	if fillFailureLevel(err) != failureLevelWarn || IsLocal(err) {
		return
	}
	prev, ok := fs.entries.Get(k)
	count := 1
	if ok && now.Sub(prev.until) < maxFillBackoff {
		count = prev.count + 1
	}
	fs.entries.Add(k, failure{err: err, count: count, until: now.Add(fs.backoff(count))})
}

func (fs *failures) backoff(count int) time.Duration {
	d := fs.base
	for i := 1; i < count && d < maxFillBackoff; i++ {
		d *= 2
	}
	return min(d, maxFillBackoff)
}

// recent returns the failure that keeps h from origin from being fetched
// now, if any. A failure whose cause has passed is forgotten here.
func (fs *failures) recent(h v1.Hash, origin string, now time.Time) (*RecentFailure, bool) {
	k := failureKey{h, origin}
	f, ok := fs.entries.Get(k)
	if !ok || !now.Before(f.until) {
		return nil, false
	}
	if over(f.err) {
		fs.entries.Remove(k)
		return nil, false
	}
	return &RecentFailure{Err: f.err, Until: f.until}, true
}

// passing is a failure that can tell when its cause has passed: an
// upstream that could not be reached (upstream.Error) is over as soon as
// its registry answers again, however long the backoff still runs, so
// that recovery follows the upstream, not a timer. Over must be cheap: it
// is asked under the fills' lock.
type passing interface{ Over() bool }

// over reports whether the cause of a remembered failure has passed. Bytes
// that did not match their digest or size keep their own backoff whatever
// the source says of itself.
func over(err error) bool {
	if errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrSizeMismatch) {
		return false
	}
	var p passing
	return errors.As(err, &p) && p.Over()
}

// failedFill is a finished fill that failed with err.
func failedFill(h v1.Hash, origin string, err error) *Fill {
	f := newFill(h, origin, "")
	f.err, f.final = err, true
	f.publishLocked(time.Now()) // readers see the failure
	close(f.ready)
	close(f.done)
	return f
}
