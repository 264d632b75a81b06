package admin_test

import (
	"slices"
	"testing"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
	"github.com/pullcache/pullcache/cache"
)

func TestPinsEndpointListsConfiguredAndStored(t *testing.T) {
	s, err := cache.Open(cache.Options{Dir: t.TempDir(), Pins: []string{"docker.io/library/golang:*"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := newAPI(t, s, admin.Options{})
	empty := decode[admin.Pins](t, get(t, srv.URL+"/admin/pins"))
	if !slices.Equal(empty.Configured, []string{"docker.io/library/golang:*"}) {
		t.Errorf("configured %q", empty.Configured)
	}
	if empty.Stored == nil || len(empty.Stored) != 0 {
		t.Errorf("stored %#v, want an empty list", empty.Stored)
	}
	if resp := post(t, srv.URL+"/admin/pin", "", []byte(`{"images":["alpine:3.19"]}`)); resp.StatusCode != 200 {
		t.Fatalf("pin: %d", resp.StatusCode)
	}
	if got := decode[admin.Pins](t, get(t, srv.URL+"/admin/pins")).Stored; !slices.Equal(got, []string{"docker.io/library/alpine:3.19"}) {
		t.Errorf("stored after a pin: %q", got)
	}
}

// TestStatsShowAChangeAtOnce: the disk figures are kept a while for the
// overview, but a change through the admin API shows at the next look.
func TestStatsShowAChangeAtOnce(t *testing.T) {
	s := openStore(t)
	if _, err := importBytes(t, s, archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, "app:v1"))...), archive.Options{}); err != nil {
		t.Fatal(err)
	}
	srv := newAPI(t, s, admin.Options{})
	if st := decode[admin.Stats](t, get(t, srv.URL+"/admin/stats")); st.Disk.Pinned == 0 {
		t.Fatalf("pinned %d after an import", st.Disk.Pinned)
	}
	if resp := post(t, srv.URL+"/admin/unpin", "", []byte(`{"images":["app:v1"]}`)); resp.StatusCode != 200 {
		t.Fatalf("unpin: %d", resp.StatusCode)
	}
	if st := decode[admin.Stats](t, get(t, srv.URL+"/admin/stats")); st.Disk.Pinned != 0 {
		t.Errorf("pinned %d right after the unpin, want 0", st.Disk.Pinned)
	}
}
