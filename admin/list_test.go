package admin_test

import (
	"testing"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
)

// TestImagesWithDFAnswersTheListAndTheDiskFigures: ls's one request
// carries the images that match and what df says of the cache.
func TestImagesWithDFAnswersTheListAndTheDiskFigures(t *testing.T) {
	s := openStore(t)
	dir, _ := archivetest.OCILayoutDir(t, "docker.io/library/app:v1", "ghcr.io/org/other:v2")
	if _, err := admin.ImportFile(s, dir, archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	srv := newAPI(t, s, admin.Options{})
	l := decode[admin.ImagesAndDF](t, get(t, srv.URL+"/admin/images?df=1&q=library/app:*"))
	if len(l.Images) != 1 {
		t.Fatalf("listed %+v, want the one image matching", l.Images)
	}
	df := decode[admin.DF](t, get(t, srv.URL+"/admin/df"))
	if l.DF.Pinned != df.Pinned {
		t.Errorf("the listing says pinned images occupy %d bytes, df %d", l.DF.Pinned, df.Pinned)
	}
	if l.DF.Blobs != df.Blobs {
		t.Errorf("the listing counts %d bytes of blobs, df %d", l.DF.Blobs, df.Blobs)
	}
	all := decode[[]admin.Image](t, get(t, srv.URL+"/admin/images"))
	if len(all) != 2 {
		t.Errorf("listed %d images, want 2", len(all))
	}
}
