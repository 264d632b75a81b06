package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealth asks a running server's /healthz and exits 0 when it answers
// 200, 1 otherwise: the container image's HEALTHCHECK, whose base has no
// shell or HTTP client to do it with. The server's address comes from the
// same configuration serve reads (--listen, PULLCACHE_LISTEN, the file), or
// from --url.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("health", stderr)
	url := fs.String("url", "", "health URL to ask (default: /healthz on the --listen address, loopback when it names no host)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pullcache health [flags]")
		fs.PrintDefaults()
	}
	cfg, pos, err := commandConfig(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("health: unexpected argument %q", pos[0])}
	}
	if *url == "" {
		*url = healthURL(cfg.Listen)
	}
	if err := checkHealth(ctx, *url, *timeout); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	fmt.Fprintf(stdout, "ok: %s\n", *url)
	return nil
}

// healthURL is the /healthz URL of a server listening on listen
// ("HOST:PORT" or ":PORT"): a listener on every address is asked on
// loopback.
func healthURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		// Validate has accepted the address; keep it as it is.
		return "http://" + listen + "/healthz"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}

// checkHealth GETs url and wants a 200 within timeout.
func checkHealth(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// The server's own address: no proxy from the environment applies.
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
