package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pullcache/pullcache/test/tmpfs"
)

// TestABoundedCacheStaysInsideItsBound pulls, with real clients, image
// after image through a mirror whose max_size is smaller than the images
// together: the data directory never grows past the bound, the images
// pulled last stay warm, and an evicted image is fetched again, correctly.
// The data directory is a tmpfs of the bound's size: a write past the
// bound, however brief, is refused there and fails the pull, where a
// sampler of the disk use could miss it between two samples.
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
	data := tmpfs.Mount(t, bound)
	// --min-free 0: else pullcache keeps 5% of this small filesystem free,
	// a tighter bound than max_size, which would go untested.
	srv := startPullcache(t, data, map[string]string{"docker.io": up.url()}, "--max-size", "64MiB", "--min-free", "0")

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
	if strings.Contains(srv.logs.String(), "no space left on device") {
		t.Errorf("pullcache wrote past its bound: the filesystem of the bound's size refused it (see its log)")
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
