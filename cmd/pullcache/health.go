package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// runHealth asks a running server's /healthz (or with --ready its
// /readyz) and exits 0 when it answers 200, 1 otherwise: the container
// image's HEALTHCHECK, whose base has no shell or HTTP client to do it
// with. The server's address comes from the same configuration serve reads
// (--listen, PULLCACHE_LISTEN, the file), or from --url.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("health", stderr)
	url := fs.String("url", "", "health URL to ask (default: /healthz, or /readyz with --ready, on the --listen address, loopback when it names no host)")
	ready := fs.Bool("ready", false, "ask /readyz: exit 0 when ready (degraded included, its reasons printed), 1 when not ready (loading, draining)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pullcache health [--ready] [flags]")
		fs.PrintDefaults()
	}
	cfg, pos, err := commandConfig(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("health: unexpected argument %q", pos[0])}
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	if *url == "" {
		*url = healthURL(cfg.Listen, path)
	}
	body, err := checkHealth(ctx, *url, *timeout)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	fmt.Fprintf(stdout, "%s: %s\n", readyStatus(body, "ok"), *url)
	return nil
}

// healthURL is the URL of path on a server listening on listen
// ("HOST:PORT" or ":PORT"): a listener on every address is asked on
// loopback.
func healthURL(listen, path string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		// Validate has accepted the address; keep it as it is.
		return "http://" + listen + path
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path
}

// checkHealth GETs url and wants a 200 within timeout; it returns the
// body's first 4 KiB.
func checkHealth(ctx context.Context, url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// The server's own address: no proxy from the environment applies.
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, readyStatus(body, "not ready"))
	}
	return body, nil
}

// readyStatus sums up a /readyz body: its status and reasons ("degraded
// (disk: ...)"); any other body (/healthz's) is summed up as def.
func readyStatus(body []byte, def string) string {
	var rep struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	if json.Unmarshal(body, &rep) != nil || rep.Status == "" {
		return def
	}
	if len(rep.Reasons) == 0 {
		return rep.Status
	}
	return rep.Status + " (" + strings.Join(rep.Reasons, "; ") + ")"
}
