package s3

import (
	"context"
	"fmt"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The test server's root credentials, and its bucket.
const (
	testAccessKey = "pullcache"
	testSecretKey = "pullcache-test-secret"
	testBucket    = "pullcache-test"
)

// server is a versitygw the test started, on loopback with a directory of
// its own, and a bucket in it.
type server struct {
	endpoint string
	caFile   string // the certificate of a server on TLS
	prefixes atomic.Int64
	addr     string
	argv     []string
	logPath  string
	cmd      *exec.Cmd // while running
}

// startVersitygw starts versitygw on plain HTTP for t, or skips t when it
// is not installed, and stops it when t ends.
func startVersitygw(t *testing.T) *server {
	t.Helper()
	return startVersitygwWith(t, false)
}

// startVersitygwWith starts versitygw, on TLS with a certificate of its own
// when withTLS.
func startVersitygwWith(t *testing.T, withTLS bool) *server {
	t.Helper()
	bin := versitygwPath()
	if bin == "" {
		t.Skip("versitygw is not installed (scripts/install-test-deps.sh installs it): the S3 tier is untested")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	s := &server{endpoint: "http://" + addr, addr: addr, logPath: filepath.Join(dir, "versitygw.log")}
	s.argv = []string{bin, "--access", testAccessKey, "--secret", testSecretKey, "--port", addr, "--quiet"}
	if withTLS {
		s.endpoint = "https://" + addr
		s.caFile = filepath.Join(dir, "cert.pem")
		keyFile := filepath.Join(dir, "key.pem")
		writeCertificate(t, s.caFile, keyFile)
		s.argv = append(s.argv, "--cert", s.caFile, "--key", keyFile)
	}
	s.argv = append(s.argv, "posix", root)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil {
				t.Logf("versitygw's log:\n%s", b)
			}
		}
	})
	s.run(t)
	t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
	tier := s.tier(t)
	if _, err := tier.client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(testBucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return s
}

// run starts the server and waits until it listens.
func (s *server) run(t *testing.T) {
	t.Helper()
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	s.cmd = exec.Command(s.argv[0], s.argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitListening(t, s.addr)
}

// stop kills the server, as a crash would, if it runs.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// versitygwPath finds versitygw on PATH or where go install puts it.
func versitygwPath() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// freeAddr is a loopback address no one listens on (the kernel's choice).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListening polls addr until it accepts connections, for 30 s at most.
func waitListening(t *testing.T, addr string) {
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

// tier returns a tier under a prefix of its own, so it starts empty, and
// checks when t ends that it left no multipart upload behind.
func (s *server) tier(t *testing.T) *Tier {
	t.Helper()
	prefix := fmt.Sprintf("t%d", s.prefixes.Add(1))
	tier, err := New(t.Context(), Config{
		Endpoint: s.endpoint, Bucket: testBucket, Prefix: prefix, PathStyle: true, PartSize: minPartSize,
		CAFile: s.caFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { assertNoUploads(t, tier) })
	return tier
}

// assertNoUploads fails t if a multipart upload is left under the tier's
// prefix: every write must complete or abort its own.
func assertNoUploads(t *testing.T, tier *Tier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := tier.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
		Bucket: &tier.bucket, Prefix: aws.String(tier.prefix),
	})
	if err != nil {
		t.Errorf("list uploads: %v", err)
		return
	}
	for _, up := range out.Uploads {
		t.Errorf("multipart upload of %s left behind", aws.ToString(up.Key))
	}
}
