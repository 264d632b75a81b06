package sharedstore

import (
	"context"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pullcache/pullcache/cache/blobs/s3"
)

// The test server's credentials and bucket.
const (
	testAccessKey = "pullcache"
	testSecretKey = "pullcache-test-secret"
	testBucket    = "pullcache-shared"
)

// gateway is a versitygw this test started on loopback, with a bucket.
type gateway struct {
	endpoint string
	cmd      *exec.Cmd
}

// startGateway starts versitygw for t, or skips t when it is not
// installed; it is killed when t ends, if it still runs.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		bin = filepath.Join(build.Default.GOPATH, "bin", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			t.Skip("versitygw is not installed (scripts/install-test-deps.sh installs it): the shared bucket is untested")
		}
	}
	root := t.TempDir()
	addr := freeAddr(t)
	g := &gateway{endpoint: "http://" + addr}
	g.cmd = exec.Command(bin, "--access", testAccessKey, "--secret", testSecretKey, "--port", addr, "--quiet", "posix", root)
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.kill)
	waitListening(t, addr)
	t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(root, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(root, "no-aws-credentials"))
	client := awss3.New(awss3.Options{
		BaseEndpoint: aws.String(g.endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}, nil
		}),
	})
	if _, err := client.CreateBucket(t.Context(), &awss3.CreateBucketInput{Bucket: aws.String(testBucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return g
}

// tier is a new client of the gateway's bucket, as each cache has its own.
func (g *gateway) tier(t *testing.T) *s3.Tier {
	t.Helper()
	tier, err := s3.New(t.Context(), s3.Config{Endpoint: g.endpoint, Bucket: testBucket, Prefix: "shared", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return tier
}

// kill stops the gateway as a crash would, if it runs.
func (g *gateway) kill() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
	g.cmd = nil
}

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
