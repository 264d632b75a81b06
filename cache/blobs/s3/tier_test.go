package s3

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/cache/blobs/blobstest"
)

// TestContract runs the seam's contract on a real S3-compatible server.
func TestContract(t *testing.T) {
	s := startVersitygw(t)
	blobstest.Run(t, func(t *testing.T) blobs.Tier { return s.tier(t) })
}

// TestListPages lists more blobs than S3 returns in one page (1,000).
func TestListPages(t *testing.T) {
	tier := startVersitygw(t).tier(t)
	const n = 1003
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			b, h := blobstest.Blob(t, 10, uint64(i))
			w, err := tier.Create(t.Context(), h, int64(len(b)))
			if err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			return w.Commit()
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	seen := map[v1.Hash]bool{}
	for info, err := range tier.List(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		seen[info.Digest] = true
	}
	if len(seen) != n {
		t.Errorf("listed %d distinct blobs, want %d", len(seen), n)
	}
}
