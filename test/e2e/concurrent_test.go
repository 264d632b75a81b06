package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// commandPuller is a client whose pull is one command writing into dir; such
// pulls can run from plain goroutines.
type commandPuller interface {
	client
	command(t *testing.T, dir, mirror, image, platform string) (env, args []string)
	pulledManifest(t *testing.T, dir, image string) string
}

// TestConcurrentColdPullsFetchEachBlobOnce starts six pulls of the same cold
// image at the same moment and checks that pullcache fetched every blob from
// the upstream exactly once (MISSION: one upstream fetch per blob, however
// many runners ask at the same moment).
func TestConcurrentColdPullsFetchEachBlobOnce(t *testing.T) {
	requireE2E(t)
	pullers := []commandPuller{craneClient{}, skopeoClient{}}
	for _, p := range pullers {
		requireTools(t, p.Tools()...)
	}
	img, err := schema2Image(2, 5<<20, hostPlatform)
	if err != nil {
		t.Fatal(err)
	}
	im := &testImage{name: "big", tag: "v1", image: img}
	want := digestOf(t, img.Digest)
	blobs := []string{digestOf(t, img.ConfigName)}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		blobs = append(blobs, digestOf(t, l.Digest))
	}

	up := newUpstream(t)
	up.push(t, im)
	// 64 KiB per 5 ms: each 5 MB layer takes about half a second to arrive,
	// so all six pulls ask for it while pullcache is still fetching it.
	up.setThrottle(&throttle{chunk: 64 << 10, tick: 5 * time.Millisecond})
	// No prefetch: a blob request then joins only a fill another pull's
	// request started, so a join proves two pulls overlapped.
	srv := startPullcache(t, t.TempDir(), map[string]string{"docker.io": up.url()}, "--prefetch=false")

	// Plain goroutines rather than parallel subtests: -parallel (GOMAXPROCS
	// by default) would cap how many run at once.
	const n = 6
	type result struct {
		puller    commandPuller
		name, dir string
		err       error
		output    string
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	ctx := context.Background()
	for i := range n {
		p := pullers[i%len(pullers)]
		dir := t.TempDir()
		env, args := p.command(t, dir, srv.addr, im.ref(), "")
		results[i] = result{puller: p, name: fmt.Sprintf("%s#%d", p.Name(), i), dir: dir}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, out, err := runErr(ctx, t, env, p.Tools()[0], args...)
			results[i].err, results[i].output = err, out
		}()
	}
	close(start)
	wg.Wait()

	for _, r := range results {
		if r.err != nil {
			t.Errorf("%s: %v\n%s", r.name, r.err, r.output)
			continue
		}
		if got := r.puller.pulledManifest(t, r.dir, im.ref()); got != want {
			t.Errorf("%s: pulled manifest %s, want %s", r.name, got, want)
		}
	}
	// Informational: the MISSION promises one fetch per blob, not per manifest.
	t.Logf("upstream manifest GETs: %d", up.count(http.MethodGet, kindManifest))
	gets := up.blobGETsByDigest()
	for _, b := range blobs {
		if gets[b] != 1 {
			t.Errorf("upstream GETs of blob %s: %d, want exactly 1", b, gets[b])
		}
	}
	if t.Failed() {
		t.Logf("upstream blob GETs by digest:\n%s", formatCounts(gets))
	}
	// One GET per blob proves nothing if the pulls ran one after another:
	// some request must have joined a fill another one started.
	joins := metricValue(t, srv.addr, "pullcache_fill_joins_total")
	if joins < 1 {
		t.Errorf("pullcache_fill_joins_total = %v: no pull joined a fill in flight, the pulls did not overlap", joins)
	}
	t.Logf("blob requests that joined a fill in flight: %v", joins)
}

// metricValue reads an unlabelled metric from pullcache's /metrics.
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}
