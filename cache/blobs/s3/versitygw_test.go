package s3

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pullcache/pullcache/cache/blobs/s3/s3test"
)

// The test server's root credentials, and its bucket.
const (
	testAccessKey = s3test.AccessKey
	testSecretKey = s3test.SecretKey
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
	bin := s3test.Binary(t, "the S3 tier is untested")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := s3test.FreeAddr(t)
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
	s3test.SetCredentials(t, dir)
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
	s3test.WaitListening(t, s.addr)
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
