package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// counter counts requests per blob digest (GET only) and per manifest
// request, so a row can tell how many times each blob crossed the upstream
// link.
type counter struct {
	mu            sync.Mutex
	blobGets      map[string]int
	manifestGets  int
	manifestHeads int
}

func newCounter() *counter { return &counter{blobGets: map[string]int{}} }

func (c *counter) record(r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch _, ref, kind := splitV2Path(r.URL.Path); {
	case kind == "blobs" && r.Method == http.MethodGet:
		c.blobGets[ref]++
	case kind == "manifests" && r.Method == http.MethodGet:
		c.manifestGets++
	case kind == "manifests" && r.Method == http.MethodHead:
		c.manifestHeads++
	}
}

// reset forgets every count.
func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blobGets = map[string]int{}
	c.manifestGets, c.manifestHeads = 0, 0
}

// blobGetsFor returns the GET count of each digest.
func (c *counter) blobGetsFor(digests []string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := make([]int, len(digests))
	for i, d := range digests {
		n[i] = c.blobGets[d]
	}
	return n
}

// manifests returns the manifest GETs counted since the last reset.
func (c *counter) manifests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.manifestGets
}

// splitV2Path splits /v2/<name>/<kind>/<ref> into name, ref and kind
// ("blobs" or "manifests"); kind is empty for any other path.
func splitV2Path(p string) (name, ref, kind string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	for _, k := range []string{"/blobs/", "/manifests/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			return rest[:i], rest[i+len(k):], strings.Trim(k, "/")
		}
	}
	return "", "", ""
}

// upstreamProxy is the counting layer between the caches and the upstream
// registry: a reverse proxy that records every request it forwards and can
// pace the bytes it sends back, to stand in for an internet link.
type upstreamProxy struct {
	counts *counter
	link   *pacer
	srv    *http.Server
	url    string
	log    *os.File
}

// startUpstreamProxy listens on a free loopback port and forwards to target.
// Proxy errors (mostly clients that hung up) go to the file at logPath.
func startUpstreamProxy(target, logPath string) (*upstreamProxy, error) {
	tu, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("upstream url: %w", err)
	}
	errLog, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("counting proxy log: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		errLog.Close()
		return nil, fmt.Errorf("counting proxy listen: %w", err)
	}
	p := &upstreamProxy{counts: newCounter(), link: &pacer{}, url: "http://" + l.Addr().String(), log: errLog}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(tu) },
		Transport: newTransport(),
		ErrorLog:  log.New(errLog, "counting-proxy: ", log.LstdFlags),
		ModifyResponse: func(resp *http.Response) error {
			resp.Body = &pacedBody{ReadCloser: resp.Body, link: p.link, done: resp.Request.Context().Done()}
			return nil
		},
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.counts.record(r)
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(errLog, "counting-proxy: ", log.LstdFlags),
	}
	go func() {
		if err := p.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(errLog, "counting proxy: %v\n", err)
		}
	}()
	return p, nil
}

func (p *upstreamProxy) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		p.srv.Close()
	}
	p.log.Close()
}

// newTransport is an HTTP transport for loopback benchmarks: many idle
// connections per host and no transparent gzip (blobs are opaque bytes).
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
}

// pacer limits the bytes per second that all responses of the counting
// proxy together may carry, like one shared internet link. A zero rate is
// no limit.
type pacer struct {
	mu   sync.Mutex
	rate float64   // bytes per second
	next time.Time // when the link is free for the next byte
}

// setRate sets the link's rate in bytes per second; 0 removes the limit.
func (p *pacer) setRate(bytesPerSec float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = bytesPerSec
	p.next = time.Time{}
}

// linkBurst is how far the paced link may run ahead of its rate after a
// pause: enough to absorb a timer that fires a few milliseconds late on a
// loaded machine, small next to any transfer the rows time.
const linkBurst = 20 * time.Millisecond

// wait blocks until n bytes have had their turn on the link, or until done
// is closed (the client went away).
func (p *pacer) wait(done <-chan struct{}, n int) error {
	p.mu.Lock()
	if p.rate == 0 {
		p.mu.Unlock()
		return nil
	}
	now := time.Now()
	// A link idle for a while does not save up more than linkBurst of
	// credit; a reader woken late by its timer keeps the credit it is
	// owed, so timer lateness under load does not slow the link down.
	if earliest := now.Add(-linkBurst); p.next.Before(earliest) {
		p.next = earliest
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	d := p.next.Sub(now)
	p.mu.Unlock()
	if d < time.Millisecond {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-done:
		return context.Canceled
	}
}

// pacedBody is an upstream response body that waits for the link after
// every read.
type pacedBody struct {
	io.ReadCloser
	link *pacer
	done <-chan struct{} // the request context's Done
}

func (b *pacedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if werr := b.link.wait(b.done, n); werr != nil && err == nil {
		err = werr
	}
	return n, err
}
