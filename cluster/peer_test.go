package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/upstream"
)

// fakeUpstream answers every blob with body and counts the GETs.
type fakeUpstream struct {
	Upstream
	body string
	gets atomic.Int32
}

func (f *fakeUpstream) GetBlob(context.Context, string, v1.Hash, int64) (io.ReadCloser, int64, error) {
	f.gets.Add(1)
	return io.NopCloser(strings.NewReader(f.body)), int64(len(f.body)), nil
}

// digestOwnedBy finds a digest whose owner among members is want.
func digestOwnedBy(t *testing.T, want string, members []string) v1.Hash {
	t.Helper()
	for i := range 1000 {
		h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i)}
		if Rank(BlobKey(h.String()), members)[0] == want {
			return h
		}
	}
	t.Fatal("no digest owned by " + want)
	return v1.Hash{}
}

// A blob request another member sent (secret and hop mark) is filled from
// the upstream even when this member thinks a third one owns the blob:
// peer requests never travel further.
func TestAPeerRequestIsNeverForwarded(t *testing.T) {
	var third atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { third.Add(1) }))
	defer other.Close()
	members := []string{"http://a:5000", other.URL}
	n := newTestNode(t, "http://a:5000", members...)
	h := digestOwnedBy(t, other.URL, members)
	up := &fakeUpstream{body: "blob bytes"}
	wrapped := n.Wrap("docker.io", up)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _, err := wrapped.GetBlob(context.Background(), "library/x", h, 0)
		if err != nil {
			t.Errorf("GetBlob: %v", err)
			return
		}
		defer body.Close()
		_, _ = io.Copy(w, body)
	})
	req := httptest.NewRequest(http.MethodGet, blobPath("library/x", h.String())+"?ns=docker.io", nil)
	req.Header.Set(SecretHeader, "0123456789abcdef")
	req.Header.Set(HopHeader, "1")
	rec := httptest.NewRecorder()
	n.Handler(api).ServeHTTP(rec, req)
	if third.Load() != 0 {
		t.Errorf("a peer's request was forwarded to %s", other.URL)
	}
	if up.gets.Load() != 1 {
		t.Errorf("%d upstream GETs, want 1", up.gets.Load())
	}
	// The same request without the hop mark is this member's own: the
	// owner is asked.
	if _, _, err := wrapped.GetBlob(context.Background(), "library/x", h, 0); err != nil {
		t.Logf("owner's empty answer: %v", err)
	}
	if third.Load() != 1 {
		t.Errorf("this member's own fill asked the owner %d times, want 1", third.Load())
	}
}

// An owner that cannot be reached is marked down and the blob comes from
// the upstream; a 404 from the owner is the upstream's not-found.
func TestUnreachableOwnerFallsBackToTheUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	members := []string{"http://a:5000", dead}
	n := newTestNode(t, "http://a:5000", members...)
	h := digestOwnedBy(t, dead, members)
	up := &fakeUpstream{body: "blob bytes"}
	body, size, err := n.Wrap("docker.io", up).GetBlob(context.Background(), "library/x", h, 0)
	if err != nil {
		t.Fatal(err)
	}
	body.Close()
	if size != int64(len(up.body)) || up.gets.Load() != 1 {
		t.Errorf("size %d, %d upstream GETs; want %d and 1", size, up.gets.Load(), len(up.body))
	}
	if _, down := n.Down()[dead]; !down {
		t.Error("the unreachable owner is not marked down")
	}

	gone := httptest.NewServer(http.NotFoundHandler())
	defer gone.Close()
	members = []string{"http://a:5000", gone.URL}
	n = newTestNode(t, "http://a:5000", members...)
	h = digestOwnedBy(t, gone.URL, members)
	_, _, err = n.Wrap("docker.io", up).GetBlob(context.Background(), "library/x", h, 0)
	var ue *upstream.Error
	if !errors.As(err, &ue) || ue.Kind != upstream.NotFound {
		t.Errorf("owner's 404: error %v, want the upstream's not-found", err)
	}
}
