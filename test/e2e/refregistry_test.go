package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// startReferenceRegistry runs the reference registry (distribution's
// `registry`, installed by the test dependencies) on a free loopback port
// with its own storage, and returns its host:port. It has no referrers API
// (it answers 404 there), so clients use the referrers tag schema with it.
// It is stopped when t ends.
func startReferenceRegistry(t *testing.T) string {
	t.Helper()
	requireTools(t, "registry")
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf("version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"+
		"storage: {filesystem: {rootdirectory: %q}, delete: {enabled: true}}\nhttp: {addr: %q}\n", filepath.Join(dir, "root"), addr)
	cmd := exec.Command("registry", "serve", writeFile(t, filepath.Join(dir, "config.yml"), cfg))
	// Without this the registry tries to export traces to a collector.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the reference registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("reference registry log:\n%s", logs.String())
		}
	})
	waitForHTTP(t, "http://"+addr+"/v2/", exited)
	return addr
}

// freeAddr is a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitForHTTP polls url until it answers, the process exits, or
// startTimeout passes; attempts are spaced by a ticker.
func waitForHTTP(t *testing.T, url string, exited <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("%s: the server exited before answering: %v", url, err)
		case <-ctx.Done():
			t.Fatalf("%s did not answer within %s", url, startTimeout)
		case <-tick.C:
		}
	}
}
