// Package slowreg is a test upstream: go-containerregistry's in-memory
// registry behind one shared uplink of a fixed rate (every blob GET, of
// every client, draws from the same budget, as a site's internet link
// does), counting what it is asked and the blob bytes it sent. GET /stats
// answers the counts as JSON, so a test can read them from outside a
// container; POST /stats/reset zeroes them.
package slowreg

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/time/rate"
)

// Stats are the counts since the start or the last reset.
type Stats struct {
	BlobGETs      int64 `json:"blob_gets"`
	RangeGETs     int64 `json:"range_gets"`
	BlobBytes     int64 `json:"blob_bytes"`
	ManifestGETs  int64 `json:"manifest_gets"`
	ManifestHEADs int64 `json:"manifest_heads"`
}

// Registry is the throttled, counting registry.
type Registry struct {
	reg                                           http.Handler
	lim                                           *rate.Limiter
	blobGETs, rangeGETs, blobBytes, mGETs, mHEADs atomic.Int64
}

// chunk is how many bytes go out per draw from the uplink's budget.
const chunk = 32 << 10

// New returns a registry whose blob bytes leave at bytesPerSecond in all
// (0: as fast as they can).
func New(bytesPerSecond int) *Registry {
	r := &Registry{reg: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	if bytesPerSecond > 0 {
		r.lim = rate.NewLimiter(rate.Limit(bytesPerSecond), 2*chunk)
	}
	return r
}

// Stats returns the counts now.
func (r *Registry) Stats() Stats {
	return Stats{BlobGETs: r.blobGETs.Load(), RangeGETs: r.rangeGETs.Load(), BlobBytes: r.blobBytes.Load(),
		ManifestGETs: r.mGETs.Load(), ManifestHEADs: r.mHEADs.Load()}
}

// Reset zeroes the counts (after the test pushed its images).
func (r *Registry) Reset() {
	for _, c := range []*atomic.Int64{&r.blobGETs, &r.rangeGETs, &r.blobBytes, &r.mGETs, &r.mHEADs} {
		c.Store(0)
	}
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := req.URL.Path
	switch {
	case p == "/stats" && req.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Stats())
		return
	case p == "/stats/reset" && req.Method == http.MethodPost:
		r.Reset()
		return
	case strings.Contains(p, "/manifests/") && req.Method == http.MethodGet:
		r.mGETs.Add(1)
	case strings.Contains(p, "/manifests/") && req.Method == http.MethodHead:
		r.mHEADs.Add(1)
	case strings.Contains(p, "/blobs/sha256:") && req.Method == http.MethodGet:
		r.blobGETs.Add(1)
		if rg := req.Header.Get("Range"); rg != "" {
			r.rangeGETs.Add(1)
			req.Header.Set("Range", r.closedRange(req, rg))
		}
		w = &uplink{ResponseWriter: w, r: r, req: req}
	}
	r.reg.ServeHTTP(w, req)
}

// uplink sends a response through the shared budget, a chunk at a time,
// flushed so that the client sees bytes as they leave.
type uplink struct {
	http.ResponseWriter
	r   *Registry
	req *http.Request
}

func (u *uplink) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), chunk)
		if u.r.lim != nil {
			if err := u.r.lim.WaitN(u.req.Context(), n); err != nil {
				return written, err
			}
		}
		m, err := u.ResponseWriter.Write(p[:n])
		written += m
		u.r.blobBytes.Add(int64(m))
		if err != nil {
			return written, err
		}
		if f, ok := u.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[n:]
	}
	return written, nil
}

// closedRange turns an open-ended range ("bytes=N-"), which
// go-containerregistry's registry refuses, into the closed one it takes,
// as Docker Hub and the reference registry take both.
func (r *Registry) closedRange(req *http.Request, rg string) string {
	if !strings.HasPrefix(rg, "bytes=") || !strings.HasSuffix(rg, "-") {
		return rg
	}
	head := httptest.NewRecorder()
	r.reg.ServeHTTP(head, httptest.NewRequest(http.MethodHead, req.URL.String(), nil))
	size, err := strconv.ParseInt(head.Header().Get("Content-Length"), 10, 64)
	if head.Code != http.StatusOK || err != nil {
		return rg
	}
	return rg + strconv.FormatInt(size-1, 10)
}
