package main

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// route sends the requests for path (a path prefix when it ends in "/")
// to h; a nil h serves nothing.
type route struct {
	path string
	h    http.Handler
}

// routes is the main listener's handler: the first route whose path
// matches, else the registry API. It dispatches on the path exactly as the
// client sent it. http.ServeMux is not used because it cleans paths and
// answers `..`, `//` or `%2e%2e` with a redirect; the registry API answers
// every path itself, with OCI error JSON. As with ServeMux, a prefix asked
// for without its slash (/ui) is redirected to it (/ui/).
func routes(api http.Handler, rs ...route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		for _, rt := range rs {
			switch {
			case rt.h == nil:
			case p == rt.path, strings.HasSuffix(rt.path, "/") && strings.HasPrefix(p, rt.path):
				rt.h.ServeHTTP(w, r)
				return
			case p+"/" == rt.path:
				http.Redirect(w, r, rt.path, http.StatusMovedPermanently)
				return
			}
		}
		api.ServeHTTP(w, r)
	})
}

// serverMaxHeaderBytes bounds request headers in net/http itself, which
// answers beyond it with its own plain-text 431. The registry API answers
// headers past its smaller limit (proxy.Options.MaxHeaderBytes) with an
// OCI error, so only requests between the two limits' reach differ.
const serverMaxHeaderBytes = 1 << 20

// newHTTPServer is the main listener's server. A request line net/http
// cannot parse never reaches a handler: net/http answers it with a plain
// 400 and closes the connection.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    serverMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
