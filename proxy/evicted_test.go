package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/pullcache/pullcache/cache"
)

// The race of a GET with an eviction that deletes the blob between its
// join and its reader is the store's: cache's
// TestABlobEvictedBeforeItsReaderOpensIsAMiss drives it through the
// entry the blob path calls (Store.Blob).

// TestAnOfflineGETOfAnEvictedBlobIsUnknown: offline, a blob an eviction
// pass deleted is 404 BLOB_UNKNOWN, not an error.
func TestAnOfflineGETOfAnEvictedBlobIsUnknown(t *testing.T) {
	checkLeaks(t)
	up := newFakeUpstream(t)
	img := randomImage(t, 4096, 1)
	up.push("library/app:v1", img)
	d, _ := layerBytes(t, img, 0)
	dir := t.TempDir()
	online := newEnvIn(t, up, dir)
	if r := online.get("/v2/library/app/blobs/" + d.String()); r.status != http.StatusOK {
		t.Fatalf("cold GET: status %d", r.status)
	}
	online.stop()
	e := newEnvIn(t, up, dir, func(o *Options, co *cache.Options) {
		o.Offline = true
		co.Now, co.Housekeeping, co.OrphanGrace = func() time.Time { return time.Now().Add(2 * time.Hour) }, -1, time.Minute
	})
	rep, err := e.store.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Orphans != 1 {
		t.Fatalf("the pass deleted %d orphans, want the blob", rep.Orphans)
	}
	r := e.get("/v2/library/app/blobs/" + d.String())
	if r.status != http.StatusNotFound {
		t.Fatalf("status %d, want 404", r.status)
	}
	if code := errorCode(t, r); code != CodeBlobUnknown {
		t.Errorf("code %s, want %s", code, CodeBlobUnknown)
	}
}
