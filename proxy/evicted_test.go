package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/pullcache/pullcache/cache"
)

// TestABlobEvictedBeforeItsReaderOpensIsAMiss: a GET finds the blob
// committed (a fill finished between its cache lookup and its join), and
// an eviction pass deletes it before the reader opens the file. The GET
// is a miss, as a cold one: the blob is fetched from the upstream and sent
// whole, not answered 500.
func TestABlobEvictedBeforeItsReaderOpensIsAMiss(t *testing.T) {
	checkLeaks(t)
	up := newFakeUpstream(t)
	img := randomImage(t, 4096, 1)
	up.push("library/app:v1", img)
	d, want := layerBytes(t, img, 0)
	e := newEnv(t, up, func(o *Options, co *cache.Options) { co.Now, co.Housekeeping = o.Now, -1 })
	joins, reads := 0, 0
	e.srv.beforeJoin = func() {
		if joins++; joins > 1 {
			return
		}
		// Another fill commits the blob before this GET joins: StartFill
		// finds it committed.
		f, _, err := e.store.StartFill(d, int64(len(want)), "elsewhere", func(context.Context, int64) (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(want)), int64(len(want)), nil
		})
		if err != nil {
			t.Error(err)
			return
		}
		<-f.Done()
	}
	e.srv.beforeRead = func(*cache.Fill) {
		if reads++; reads > 1 {
			return
		}
		// No manifest references the blob: past the grace period the
		// sweep deletes it.
		e.clock.advance(2 * time.Hour)
		rep, err := e.store.GC(false)
		if err != nil {
			t.Error(err)
		}
		if rep.Orphans != 1 {
			t.Errorf("the pass deleted %d orphans, want the blob", rep.Orphans)
		}
	}
	r := e.get("/v2/library/app/blobs/" + d.String())
	if r.status != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", r.status, r.body)
	}
	if !bytes.Equal(r.body, want) {
		t.Errorf("body of %d bytes, want the blob's %d", len(r.body), len(want))
	}
	if n := up.calls("GET blobs " + d.String()); n != 1 {
		t.Errorf("%d upstream GETs of the blob, want 1 (the refetch)", n)
	}
	if reads != 2 {
		t.Errorf("%d readers opened, want 2 (the evicted blob, then its refetch)", reads)
	}
}

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
