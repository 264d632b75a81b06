package sharedstore

import (
	"context"
	"os/exec"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pullcache/pullcache/cache/blobs/s3"
	"github.com/pullcache/pullcache/cache/blobs/s3/s3test"
)

// The test server's credentials and bucket.
const (
	testAccessKey = s3test.AccessKey
	testSecretKey = s3test.SecretKey
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
	bin := s3test.Binary(t, "the shared bucket is untested")
	root := t.TempDir()
	addr := s3test.FreeAddr(t)
	g := &gateway{endpoint: "http://" + addr}
	g.cmd = exec.Command(bin, "--access", testAccessKey, "--secret", testSecretKey, "--port", addr, "--quiet", "posix", root)
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.kill)
	s3test.WaitListening(t, addr)
	s3test.SetCredentials(t, root)
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
