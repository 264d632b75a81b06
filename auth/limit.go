package auth

import (
	"math"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// loginLimiter counts failed logins per client address: each address has
// a bucket of failures allowed, refilled over the window. An empty bucket
// refuses the address's logins until it refills.
type loginLimiter struct {
	mu     sync.Mutex
	every  rate.Limit
	burst  int
	byAddr *lru.Cache[string, *rate.Limiter]
	now    func() time.Time
}

// maxTrackedAddrs bounds the memory of the limiter; the least recently
// failing addresses are forgotten first.
const maxTrackedAddrs = 16384

func newLoginLimiter(failures int, window time.Duration, now func() time.Time) *loginLimiter {
	c, _ := lru.New[string, *rate.Limiter](maxTrackedAddrs)
	return &loginLimiter{every: rate.Every(window / time.Duration(failures)), burst: failures, byAddr: c, now: now}
}

// blocked reports whether addr has no failures left, and how long until
// it has one.
func (l *loginLimiter) blocked(addr string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.byAddr.Get(addr)
	if !ok {
		return 0, false
	}
	tokens := lim.TokensAt(l.now())
	if tokens >= 1 {
		return 0, false
	}
	wait := time.Duration(math.Ceil((1 - tokens) / float64(l.every) * float64(time.Second)))
	return wait, true
}

// failed records one failed login from addr.
func (l *loginLimiter) failed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.byAddr.Get(addr)
	if !ok {
		lim = rate.NewLimiter(l.every, l.burst)
		l.byAddr.Add(addr, lim)
	}
	lim.AllowN(l.now(), 1)
}
