package s3

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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

// TestAbandonedWriter has a writer's context end with neither Commit nor
// Cancel called, as when a fill's goroutine dies: its multipart upload is
// aborted all the same.
func TestAbandonedWriter(t *testing.T) {
	tier := startVersitygw(t).tier(t)
	b, h := blobstest.Blob(t, blobstest.LargeSize, 3)
	ctx, cancel := context.WithCancel(t.Context())
	w, err := tier.Create(ctx, h, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Two parts' worth: the first is sent and its upload started.
	if _, err := w.Write(b[:2*minPartSize]); err != nil {
		t.Fatal(err)
	}
	if pollUntil(t, 10*time.Second, func() int { return uploads(t, tier) }) == 0 {
		t.Fatal("no multipart upload started after two parts were written")
	}
	cancel()
	gone := pollUntil(t, 10*time.Second, func() int {
		if uploads(t, tier) == 0 {
			return 1
		}
		return 0
	})
	if gone == 0 {
		t.Error("the abandoned writer's upload is still there after 10 s")
	}
}

// uploads counts the multipart uploads under the tier's prefix.
func uploads(t *testing.T, tier *Tier) int {
	t.Helper()
	out, err := tier.client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{
		Bucket: &tier.bucket, Prefix: aws.String(tier.prefix),
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

// TestServerCrashMidWrite kills the server while a blob streams into it:
// the commit fails, no object appears once the server is back, the upload
// the writer could not abort is swept, and the blob can be written again.
func TestServerCrashMidWrite(t *testing.T) {
	s := startVersitygw(t)
	tier := s.tier(t)
	b, h := blobstest.Blob(t, blobstest.LargeSize, 4)
	w, err := tier.Create(t.Context(), h, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel()
	if _, err := w.Write(b[:2*minPartSize]); err != nil {
		t.Fatal(err)
	}
	if pollUntil(t, 10*time.Second, func() int { return uploads(t, tier) }) == 0 {
		t.Fatal("no multipart upload started after two parts were written")
	}
	s.stop()
	_, err = w.Write(b[2*minPartSize:])
	if err == nil {
		err = w.Commit()
	}
	if err == nil || errors.Is(err, blobs.ErrExists) {
		t.Fatalf("commit with the server down: %v, want a failure", err)
	}
	s.run(t)
	if _, err := tier.Stat(t.Context(), h); !errors.Is(err, blobs.ErrNotFound) {
		t.Errorf("stat after the failed write: %v, want ErrNotFound", err)
	}
	swept := pollUntil(t, 10*time.Second, func() int {
		n, err := tier.SweepUploads(t.Context(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return n
	})
	if swept != 1 {
		t.Errorf("swept %d uploads, want the 1 left", swept)
	}
	w2, err := tier.Create(t.Context(), h, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Cancel()
	if _, err := w2.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w2.Commit(); err != nil {
		t.Fatalf("writing the blob again: %v", err)
	}
}
