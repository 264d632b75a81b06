package blobstest_test

import (
	"testing"

	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/cache/blobs/blobstest"
)

func TestMemory(t *testing.T) {
	blobstest.Run(t, func(*testing.T) blobs.Tier { return blobstest.NewMemory() })
}
