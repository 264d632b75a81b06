// Package s3test holds what tests need to run a real S3-compatible server
// (versitygw) beside them: finding its binary, a free loopback address,
// waiting until it listens, and its credentials in the environment the
// AWS SDK reads. Each test package still starts the server its own way
// (plain or TLS, restartable or not). It is for tests only.
package s3test

import (
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The test server's root credentials.
const (
	AccessKey = "pullcache"
	SecretKey = "pullcache-test-secret"
)

// Binary returns versitygw's path, on PATH or where go install puts it, or
// skips t saying what goes untested without it.
func Binary(t testing.TB, untested string) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		t.Skip("versitygw is not installed (scripts/install-test-deps.sh installs it): " + untested)
	}
	return p
}

// FreeAddr is a loopback address no one listens on (the kernel's choice).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitListening polls addr until it accepts connections, for 30 s at most.
func WaitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw does not listen on %s after 30 s: %v", addr, err)
		}
		<-tick.C
	}
}

// SetCredentials puts the server's credentials in t's environment, where
// the AWS SDK looks first, and points the SDK's config and credentials
// files at names in dir that do not exist, so nothing of the machine's
// own AWS setup (or its instance metadata) is read.
func SetCredentials(t *testing.T, dir string) {
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
}
