package s3

import (
	"testing"

	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/cache/blobs/blobstest"
)

// TestContract runs the seam's contract on a real S3-compatible server.
func TestContract(t *testing.T) {
	s := startVersitygw(t)
	blobstest.Run(t, func(t *testing.T) blobs.Tier { return s.tier(t) })
}
