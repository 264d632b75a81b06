package auth

import (
	"math"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// LoginLimiter counts failed logins per client address: each address has
// a bucket of failures allowed, refilled over the window. An empty bucket
// refuses the address's logins until it refills. An Authenticator has one
// (Limiter); other login forms share it, so that an address's failures
// count once, wherever it tries.
type LoginLimiter struct {
	mu     sync.Mutex
	every  rate.Limit
	burst  int
	byAddr *lru.Cache[string, *rate.Limiter]
	now    func() time.Time
}

// maxTrackedAddrs bounds the memory of the limiter; the least recently
// failing addresses are forgotten first.
const maxTrackedAddrs = 16384

// NewLoginLimiter allows failures failed logins per address in window
// (defaults 10 and 1m, as Options), for a caller with no Authenticator.
func NewLoginLimiter(failures int, window time.Duration) *LoginLimiter {
	o := Options{LoginFailures: failures, LoginWindow: window}
	setDefaults(&o)
	return newLoginLimiter(o.LoginFailures, o.LoginWindow, o.Now)
}

func newLoginLimiter(failures int, window time.Duration, now func() time.Time) *LoginLimiter {
	c, _ := lru.New[string, *rate.Limiter](maxTrackedAddrs)
	return &LoginLimiter{every: rate.Every(window / time.Duration(failures)), burst: failures, byAddr: c, now: now}
}

// Check runs check, a login from client (ClientKey), under client's
// budget: a client with no failures left gets a 429 Denial and check is
// not run; a check that fails counts against the budget and is a 401.
func (l *LoginLimiter) Check(client string, check func() bool) *Denial {
	if wait, blocked := l.blocked(client); blocked {
		return &Denial{Status: http.StatusTooManyRequests, RetryAfter: wait,
			Reason: "too many failed logins from this address; try again later"}
	}
	if !check() {
		l.failed(client)
		return unauthorized("invalid username or password", "")
	}
	return nil
}

// blocked reports whether addr has no failures left, and how long until
// it has one.
func (l *LoginLimiter) blocked(addr string) (time.Duration, bool) {
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
func (l *LoginLimiter) failed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.byAddr.Get(addr)
	if !ok {
		lim = rate.NewLimiter(l.every, l.burst)
		l.byAddr.Add(addr, lim)
	}
	lim.AllowN(l.now(), 1)
}
