package console_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/cache"
)

// TestOverviewShowsTheClusterMembers: with a cluster, an admin's overview
// (and its live part) lists every member with its health, share and
// fills; users who are not admins see none of it, nor the API's stats.
func TestOverviewShowsTheClusterMembers(t *testing.T) {
	since := time.Now().Add(-time.Hour)
	members := func() []admin.MemberHealth {
		return []admin.MemberHealth{
			{URL: "http://a.example:5000", Self: true, Up: true, Since: since, Share: 0.625, FillsInFlight: 3},
			{URL: "http://b.example:5000", Up: false, Since: since, Share: 0, LastError: "connection refused", FillsInFlight: -1},
		}
	}
	e := newEnvOf(t, newRuled(), cache.Options{Dir: t.TempDir()}, members)
	root := e.signedInAs("root")
	for _, p := range []string{"/ui/", "/ui/live"} {
		a := root.get(p)
		has(t, p, a, `id="members"`, "http://a.example:5000", "this member", "62.5%", "<td>3</td>",
			"http://b.example:5000", `badge bad">down`, "connection refused", "<td>?</td>")
	}
	bob := e.signedInAs("bob")
	hasNot(t, "overview as bob", bob.get("/ui/"), `id="members"`, "a.example")
	var st admin.Stats
	if err := json.Unmarshal([]byte(bob.get("/ui/api/stats").body), &st); err != nil || len(st.Members) != 0 {
		t.Errorf("GET /ui/api/stats as bob: members %v (%v), want none", st.Members, err)
	}
	if err := json.Unmarshal([]byte(root.get("/ui/api/stats").body), &st); err != nil || len(st.Members) != 2 {
		t.Errorf("GET /ui/api/stats as root: members %v (%v), want both", st.Members, err)
	}
}

// TestOverviewWithoutAClusterShowsNoMembers: no cluster, no section.
func TestOverviewWithoutAClusterShowsNoMembers(t *testing.T) {
	e := newEnv(t, newRuled())
	root := e.signedInAs("root")
	hasNot(t, "overview", root.get("/ui/"), `id="members"`, "Cluster members")
	if b := root.get("/ui/api/stats").body; !json.Valid([]byte(b)) || strings.Contains(b, `"members"`) {
		t.Errorf("GET /ui/api/stats without a cluster has members: %s", b)
	}
}
