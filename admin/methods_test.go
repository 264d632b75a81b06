package admin_test

import (
	"slices"
	"testing"

	"github.com/pullcache/pullcache/admin"
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
