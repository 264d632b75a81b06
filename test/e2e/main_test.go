package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// e2eEnv is the variable that enables the tests in this package.
const e2eEnv = "PULLCACHE_E2E"

// pullcacheBin is the pullcache binary built by TestMain; empty when the
// end-to-end tests are disabled.
var pullcacheBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds cmd/pullcache once for the whole test binary (only when the
// tests are enabled: `go test -list` and ordinary unit runs also pass through
// TestMain) and runs the tests.
func runTests(m *testing.M) int {
	if os.Getenv(e2eEnv) != "1" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "pullcache-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pullcache")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pullcache")
	build.Dir = filepath.Join("..", "..") // the module root; go test runs in test/e2e
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/pullcache: %v\n%s", err, out)
		return 1
	}
	pullcacheBin = bin
	return m.Run()
}

// requireE2E skips t unless the end-to-end tests are enabled.
func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(e2eEnv) != "1" {
		t.Skipf("end-to-end test: set %s=1 to run it (./scripts/test.sh does)", e2eEnv)
	}
}

// requireTools fails t when a client binary is missing: once the tests are
// enabled, a missing client must never turn into a silent skip.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s is not installed (run ./scripts/install-test-deps.sh): %v", name, err)
		}
	}
}
