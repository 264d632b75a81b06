package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// TestUpstreamOutageEnds: the upstream refuses connections for 45 s (its
// listener closed) while clients ask pullcache for a cold manifest by tag
// and its cold layer every second, as Docker retries; then it listens on
// the same port again. Every client must have the right bytes within 3 s
// of the upstream answering again: recovery follows the upstream (probed
// every 2 s), not a backoff grown during the outage.
func TestUpstreamOutageEnds(t *testing.T) {
	requireE2E(t)
	const (
		clients = 8
		outage  = 45 * time.Second
		within  = 3 * time.Second
	)
	up := newUpstream(t)
	img, err := random.Image(64<<10, 1)
	if err != nil {
		t.Fatal(err)
	}
	up.push(t, &testImage{name: "outage", tag: "v1", image: img})
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layer := readLayer(t, layers[0])
	p := startPullcache(t, t.TempDir(), map[string]string{"docker.io": up.url()})
	base := "http://" + p.addr + "/v2/library/outage/"
	manifestURL, blobURL := base+"manifests/v1", base+"blobs/"+digestOf(t, layers[0].Digest)

	handler := up.srv.Config.Handler
	up.stop() // connections to its port are now refused
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var back time.Time
	var backMu sync.Mutex
	recovered := make([]time.Duration, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			start := time.Duration(i) * time.Second / clients // spread over the second
			recovered[i] = untilRight(ctx, start, manifestURL, blobURL, manifest, layer, func() time.Time {
				backMu.Lock()
				defer backMu.Unlock()
				return back
			})
		})
	}
	select {
	case <-time.After(outage):
	case <-ctx.Done():
	}
	backMu.Lock()
	reopen(t, up.host, handler)
	back = time.Now()
	backMu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cancel()
		<-done
		t.Fatal("clients did not get their bytes within a minute of the upstream answering again")
	}
	sort.Slice(recovered, func(i, j int) bool { return recovered[i] < recovered[j] })
	t.Logf("%s outage, %d clients retrying every second: the right bytes %s (first), %s (last) after the upstream answered again; "+
		"upstream then saw %d manifest GETs, %d blob GETs",
		outage, clients, recovered[0], recovered[clients-1], up.count(http.MethodGet, kindManifest), up.count(http.MethodGet, kindBlob))
	for i, d := range recovered {
		if d < 0 || d > within {
			t.Errorf("client %d had the right bytes %s after the upstream answered again, want within %s", i, d, within)
		}
	}
	up.requireEachBlobFetchedAtMostOnce(t)
}

// untilRight asks, from start on, for a manifest and a blob every second
// until both come back right, and returns how long after back() that was
// (-1 if before it, or ctx ended first).
func untilRight(ctx context.Context, start time.Duration, manifestURL, blobURL string, manifest, blob []byte, back func() time.Time) time.Duration {
	client := &http.Client{Timeout: 30 * time.Second}
	select {
	case <-time.After(start):
	case <-ctx.Done():
		return -1
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		m := getOK(ctx, client, manifestURL, "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
		b := getOK(ctx, client, blobURL, "")
		if bytes.Equal(m, manifest) && bytes.Equal(b, blob) {
			at := back()
			if at.IsZero() {
				return -1 // served during the outage: impossible for a cold image
			}
			return time.Since(at)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return -1
		}
	}
}

// getOK is the body of a 200 to a GET of url, nil otherwise.
func getOK(ctx context.Context, client *http.Client, url, accept string) []byte {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	return b
}

// reopen serves handler on addr again (the port of an upstream that was
// stopped), until the test ends.
func reopen(t *testing.T, addr string, handler http.Handler) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s again: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
}

func readLayer(t *testing.T, l interface{ Compressed() (io.ReadCloser, error) }) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
