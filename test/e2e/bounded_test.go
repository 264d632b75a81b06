package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// diskUse is what dir occupies on disk: allocated blocks, as the cache
// counts itself (du, not ls).
func diskUse(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// sampler measures a directory's disk use every few milliseconds and keeps
// the largest value seen.
type sampler struct {
	mu      sync.Mutex
	max     int64
	samples int
	stop    chan struct{}
	done    chan struct{}
}

func startSampler(dir string) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			n := diskUse(dir)
			s.mu.Lock()
			s.max, s.samples = max(s.max, n), s.samples+1
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) result() (int64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.samples
}

func (s *sampler) close() {
	close(s.stop)
	<-s.done
}

// TestABoundedCacheStaysInsideItsBound pulls, with real clients, image
// after image through a mirror whose max_size is smaller than the images
// together: the data directory never grows past the bound (sampled during
// the run), the images pulled last stay warm, and an evicted image is
// fetched again, correctly.
func TestABoundedCacheStaysInsideItsBound(t *testing.T) {
	requireE2E(t)
	pullers := []commandPuller{craneClient{}, skopeoClient{}}
	for _, p := range pullers {
		requireTools(t, p.Tools()...)
	}
	const (
		bound  = 64 << 20
		images = 8 // 8 × 12 MiB = 96 MiB through a 64 MiB cache
	)
	var ims []*testImage
	for i := range images {
		img, err := schema2Image(2, 6<<20, hostPlatform)
		if err != nil {
			t.Fatal(err)
		}
		ims = append(ims, &testImage{name: fmt.Sprintf("bounded%d", i), tag: "v1", image: img})
	}
	up := newUpstream(t)
	up.push(t, ims...)
	data := t.TempDir()
	srv := startPullcache(t, data, map[string]string{"docker.io": up.url()}, "--max-size", "64MiB")
	use := startSampler(data)
	defer use.close()

	ctx := context.Background()
	pull := func(i int) {
		t.Helper()
		p := pullers[i%len(pullers)]
		dir := t.TempDir()
		env, args := p.command(t, dir, srv.addr, ims[i].ref(), "")
		run(ctx, t, env, p.Tools()[0], args...)
		want := digestOf(t, ims[i].image.Digest)
		if got := p.pulledManifest(t, dir, ims[i].ref()); got != want {
			t.Fatalf("%s pulled %s as %s, want %s", p.Name(), ims[i].ref(), got, want)
		}
	}
	for i := range ims {
		pull(i)
		if peak, _ := use.result(); peak > bound {
			t.Fatalf("after image %d the data directory used %d bytes; the bound is %d", i, peak, bound)
		}
	}
	var df struct {
		Used  int64 `json:"used"`
		Bound int64 `json:"bound"`
	}
	if err := json.Unmarshal([]byte(pullcacheCmd(ctx, t, "df", "--json", "--data", data)), &df); err != nil {
		t.Fatal(err)
	}
	if df.Bound != bound || df.Used > bound {
		t.Errorf("df: %+v", df)
	}

	// The last image is warm: pulling it again fetches nothing upstream.
	before := up.count("GET", "blob")
	pull(images - 1)
	if got := up.count("GET", "blob"); got != before {
		t.Errorf("the most recently pulled image fetched %d blobs from the upstream again", got-before)
	}
	// The first was evicted: pulled again, it is fetched and correct.
	pull(0)
	if got := up.count("GET", "blob"); got <= before {
		t.Error("the first image was not refetched: was anything evicted?")
	}
	peak, samples := use.result()
	t.Logf("peak disk use %d bytes of a %d bound over %d samples", peak, bound, samples)
	if peak > bound {
		t.Errorf("the data directory reached %d bytes; the bound is %d", peak, bound)
	}
	if out := pullcacheCmd(ctx, t, "verify", "--data", data); !containsLine(out, "the store is sound") {
		t.Errorf("verify: %s", out)
	}
}

func containsLine(out, line string) bool {
	for _, l := range splitLines(out) {
		if l == line {
			return true
		}
	}
	return false
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
