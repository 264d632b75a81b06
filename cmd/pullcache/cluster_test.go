package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pullcache/pullcache/cluster"
	"github.com/pullcache/pullcache/health"
)

const testClusterSecret = "0123456789abcdef-secret"

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// SIGHUP re-reads the configuration file and the members change without
// a restart.
func TestSIGHUPReloadsTheMembers(t *testing.T) {
	dir := t.TempDir()
	secret := writeFile(t, dir, "secret", testClusterSecret+"\n")
	conf := func(peers string) string {
		return "data: " + dir + "/data\ncluster:\n  self: http://a:5000\n  peers: [" + peers + "]\n  secret_file: " + secret + "\n"
	}
	file := writeFile(t, dir, "c.yml", conf("http://a:5000, http://b:5000"))
	args := []string{"--config", file}
	cfg, err := loadConfig("serve", args, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	node, err := cluster.New(cluster.Options{Self: cfg.Cluster.Self, Peers: cfg.Cluster.Peers, Secret: []byte(testClusterSecret)})
	if err != nil {
		t.Fatal(err)
	}
	stop := reloadPeersOnHUP(args, node, slog.New(slog.DiscardHandler))
	defer stop()
	writeFile(t, dir, "c.yml", conf("http://a:5000, http://b:5000, http://c:5000"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for len(node.Members()) != 3 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("members after SIGHUP: %v, want three", node.Members())
		}
	}
}

func TestClusterCommandShowsTheMembers(t *testing.T) {
	dir := t.TempDir()
	secret := writeFile(t, dir, "secret", testClusterSecret)
	srv := httptest.NewUnstartedServer(nil)
	self := "http://" + srv.Listener.Addr().String()
	node, err := cluster.New(cluster.Options{Self: self, Peers: []string{self, "http://127.0.0.1:1"}, Secret: []byte(testClusterSecret),
		FillsInFlight: func() int { return 2 }})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = node.Handler(nil)
	srv.Start()
	defer srv.Close()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"cluster", "--url", self, "--cluster-secret-file", secret}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{self, "http://127.0.0.1:1", "MEMBER", "SHARE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	bad := writeFile(t, dir, "bad", "another-secret-of-16")
	if code := run(context.Background(), []string{"cluster", "--url", self, "--cluster-secret-file", bad}, &out, &errOut); code == 0 {
		t.Error("a wrong secret was answered")
	}
}

func TestReadinessNamesMembersDown(t *testing.T) {
	node, err := cluster.New(cluster.Options{Self: "http://a:1", Peers: []string{"http://a:1", "http://127.0.0.1:1"},
		Secret: []byte(testClusterSecret), ProbeInterval: 10 * time.Millisecond, ProbeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st, why := clusterState(node); st != health.OK {
		t.Fatalf("all members up: %v %q", st, why)
	}
	node.Start()
	defer node.Close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for len(node.Down()) == 0 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("a member refusing connections was not marked down")
		}
	}
	st, why := clusterState(node)
	if st != health.Degraded || !strings.Contains(why, "http://127.0.0.1:1") {
		t.Errorf("a member down: %v %q, want degraded naming it", st, why)
	}
}

func TestPeersPassThePerClientRequestLimit(t *testing.T) {
	node, err := cluster.New(cluster.Options{Self: "http://a:1", Peers: []string{"http://a:1"}, Secret: []byte(testClusterSecret)})
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) })
	h := unlimitedPeers(node, ok, limited)
	for _, tc := range []struct {
		secret string
		want   int
	}{{"", http.StatusTooManyRequests}, {"wrong-secret-0123456", http.StatusTooManyRequests}, {testClusterSecret, http.StatusOK}} {
		req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		if tc.secret != "" {
			req.Header.Set(cluster.SecretHeader, tc.secret)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("secret %q: status %d, want %d", tc.secret, rec.Code, tc.want)
		}
	}
}

// The console's and /admin/stats's members: this member's view, each
// live member's fills asked of it, "unknown" (-1) for one that does not
// answer.
func TestMemberHealthAsksEachMemberItsFills(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	b, a, dead := "http://"+srv.Listener.Addr().String(), "http://a.invalid:5000", "http://127.0.0.1:1"
	peers := []string{a, b, dead}
	nb, err := cluster.New(cluster.Options{Self: b, Peers: peers, Secret: []byte(testClusterSecret), FillsInFlight: func() int { return 5 }})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = nb.Handler(nil)
	srv.Start()
	defer srv.Close()
	na, err := cluster.New(cluster.Options{Self: a, Peers: peers, Secret: []byte(testClusterSecret), FillsInFlight: func() int { return 2 }})
	if err != nil {
		t.Fatal(err)
	}
	got := memberHealth(na, statusClient{secret: []byte(testClusterSecret), timeout: 5 * time.Second})()
	want := map[string]int{a: 2, b: 5, dead: -1}
	share := 0.0
	for _, m := range got {
		share += m.Share
		if f, ok := want[m.URL]; !ok || m.FillsInFlight != f || m.Self != (m.URL == a) {
			t.Errorf("member %+v, want fills %d, self only for %s", m, f, a)
		}
		delete(want, m.URL)
	}
	if len(want) != 0 || share < 0.99 || share > 1.01 {
		t.Errorf("members %+v: missing %v, shares summing to %.3f", got, want, share)
	}
}
