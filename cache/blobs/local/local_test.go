package local_test

import (
	"context"
	"os"
	"testing"

	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/cache/blobs/blobstest"
	"github.com/pullcache/pullcache/cache/blobs/local"
)

func TestContract(t *testing.T) {
	blobstest.Run(t, func(t *testing.T) blobs.Tier {
		tier, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return tier
	})
}

// TestAWriteIsFollowedInItsTempFileAndLeavesNothingOnCancel: the bytes
// of a write in progress are readable from its file, nothing is at the
// blob's path before Commit, and a cancelled write leaves no temp file.
func TestAWriteIsFollowedInItsTempFileAndLeavesNothingOnCancel(t *testing.T) {
	dir := t.TempDir()
	tier, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, h := blobstest.Blob(t, 4096, 1)
	w, err := tier.NewWriter(context.Background(), h, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b[:1000]); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1000)
	if _, err := w.File().ReadAt(got, 0); err != nil || string(got) != string(b[:1000]) {
		t.Fatalf("the temp file does not hold what was written: %v", err)
	}
	if _, err := os.Stat(tier.Path(h)); !os.IsNotExist(err) {
		t.Fatalf("a blob is at its path before Commit: %v", err)
	}
	if err := w.Cancel(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tier.TempDir()); len(left) != 0 {
		t.Errorf("%d temp files left after Cancel", len(left))
	}
	rc, _, err := tier.Open(context.Background(), h, 0)
	if err == nil {
		rc.Close()
		t.Error("a cancelled write is readable")
	}
}
