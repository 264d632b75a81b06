package cluster

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newTestNode(t *testing.T, self string, peers ...string) *Node {
	t.Helper()
	n, err := New(Options{Self: self, Peers: peers, Secret: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSelfMustBeAMember(t *testing.T) {
	_, err := New(Options{Self: "http://c:5000", Peers: []string{"http://a:5000", "http://b:5000"}, Secret: []byte("x")})
	if err == nil || !strings.Contains(err.Error(), "cluster.self") {
		t.Fatalf("error %v, want one naming cluster.self", err)
	}
}

func TestAFailedMemberLosesItsShareAtOnceAndGetsItBack(t *testing.T) {
	n := newTestNode(t, "http://a:5000", "http://A:5000", "http://b:5000", "http://c:5000")
	n.markDown("http://b:5000", errStalled)
	for _, m := range n.Live() {
		if m == "http://b:5000" {
			t.Fatal("a member marked down is still live")
		}
	}
	select {
	case <-n.downSignal("http://b:5000"):
	default:
		t.Fatal("streams from a member marked down are not told")
	}
	n.markUp("http://b:5000")
	if got := len(n.Live()); got != 3 {
		t.Errorf("%d live members after the member came back, want 3", got)
	}
}

func TestSetPeersKeepsStateAndRefusesAListWithoutSelf(t *testing.T) {
	n := newTestNode(t, "http://a:5000", "http://a:5000", "http://b:5000")
	n.markDown("http://b:5000", errStalled)
	if err := n.SetPeers([]string{"http://b:5000"}); err == nil {
		t.Fatal("a member list without self was accepted")
	}
	if err := n.SetPeers([]string{"http://a:5000", "http://b:5000", "http://c:5000"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(n.Live(), " "); got != "http://a:5000 http://c:5000" {
		t.Errorf("live %q: the down member must stay down, the new one start live", got)
	}
}

func TestClusterEndpointsNeedTheSecret(t *testing.T) {
	n := newTestNode(t, "http://a:5000", "http://a:5000")
	h := n.Handler(http.NotFoundHandler())
	for _, secret := range []string{"", "wrong", "0123456789abcdeF"} {
		req := httptest.NewRequest(http.MethodGet, StatusPath, nil)
		if secret != "" {
			req.Header.Set(SecretHeader, secret)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("secret %q: status %d, want 401", secret, rec.Code)
		}
	}
	req := httptest.NewRequest(http.MethodGet, StatusPath, nil)
	req.Header.Set(SecretHeader, "0123456789abcdef")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("with the secret: status %d", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), `"self":"http://a:5000"`) {
		t.Errorf("status body %s", rec.Body)
	}
}
