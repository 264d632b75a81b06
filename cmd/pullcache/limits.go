package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
)

// limitListener closes connections beyond max open at once, or beyond
// perClient open from one client address (0: no such limit), as they are
// accepted: before any byte (or TLS handshake) is read from them.
type limitListener struct {
	net.Listener
	max, perClient int
	log            *slog.Logger

	mu     sync.Mutex
	open   int
	byAddr map[string]int
}

func limitConnections(ln net.Listener, max, perClient int, log *slog.Logger) net.Listener {
	if max <= 0 && perClient <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, max: max, perClient: perClient, log: log, byAddr: map[string]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := addrKey(c.RemoteAddr().String())
		if l.admit(key) {
			return &limitedConn{Conn: c, l: l, key: key}, nil
		}
		l.log.Debug("connection refused: over the connection limit", "client", key)
		c.Close()
	}
}

func (l *limitListener) admit(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if (l.max > 0 && l.open >= l.max) || (l.perClient > 0 && l.byAddr[key] >= l.perClient) {
		return false
	}
	l.open++
	l.byAddr[key]++
	return true
}

func (l *limitListener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byAddr[key]--; l.byAddr[key] <= 0 {
		delete(l.byAddr, key)
	}
}

// limitedConn gives its slot back when closed, once.
type limitedConn struct {
	net.Conn
	l    *limitListener
	key  string
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.release(c.key) })
	return c.Conn.Close()
}

// ReadFrom hands the copy to the TCP connection: net/http sends a file
// with sendfile only through its connection's ReadFrom, so without this
// the wrapper would turn every cached blob into a user-space copy.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides a writer's ReadFrom, so io.Copy does not call back.
type writerOnly struct{ io.Writer }

// addrKey is the client address a "host:port" counts under.
func addrKey(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// limitRequests answers 429 TOOMANYREQUESTS, with Retry-After, to a
// client address that already has perClient requests in flight (0: no
// limit).
func limitRequests(next http.Handler, perClient int) http.Handler {
	if perClient <= 0 {
		return next
	}
	var mu sync.Mutex
	inFlight := map[string]int{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := addrKey(r.RemoteAddr)
		mu.Lock()
		if inFlight[key] >= perClient {
			mu.Unlock()
			h := w.Header()
			h.Set("Content-Type", "application/json")
			h.Set("Retry-After", "1")
			h.Set("Docker-Distribution-API-Version", "registry/2.0")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests in flight from this address"}]}` + "\n"))
			return
		}
		inFlight[key]++
		mu.Unlock()
		defer func() {
			mu.Lock()
			if inFlight[key]--; inFlight[key] <= 0 {
				delete(inFlight, key)
			}
			mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}
