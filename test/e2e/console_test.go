package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pullcache/pullcache/archive/archivetest"
)

const (
	consoleToken = "e2e-console-token-0123456789"
	// browserTimeout bounds each step in the browser: a wait for an element
	// or a condition.
	browserTimeout = 60 * time.Second
	// screenshotsEnv names a directory the screenshots are copied to as
	// well (scripts/screenshots.sh points it at docs/).
	screenshotsEnv = "PULLCACHE_SCREENSHOTS"
)

// chromium finds Debian's chromium, or skips: the install script installs
// it where it can, and a machine without it cannot run these tests.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser tests need Chromium, which is not installed (./scripts/install-test-deps.sh installs Debian's chromium where it can)")
	return ""
}

// browser is a headless Chromium driven over the DevTools protocol.
type browser struct {
	t   *testing.T
	ctx context.Context
	url string // the mirror's base URL
	out string // where screenshots go

	mu sync.Mutex
	// elsewhere are the requests the pages made to anywhere but the
	// mirror, the loads the browser blocked (an air-gapped site has
	// nothing else to fetch from) and the pages answered with an error.
	elsewhere []string
}

// watch records every request to another origin and every blocked load.
// It runs on the browser's event loop: it only appends.
func (b *browser) watch(ev any) {
	var bad string
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if u := e.Request.URL; !strings.HasPrefix(u, b.url+"/") && !strings.HasPrefix(u, "data:") && u != "about:blank" {
			bad = e.Request.Method + " " + u
		}
	case *network.EventResponseReceived:
		// A page that answers an error still renders something to wait
		// for; its status says it failed.
		if e.Type == network.ResourceTypeDocument && e.Response.Status >= 400 {
			bad = fmt.Sprintf("page %s answered %d", e.Response.URL, e.Response.Status)
		}
	case *network.EventLoadingFailed:
		if e.BlockedReason != "" {
			bad = fmt.Sprintf("blocked (%s): request %s", e.BlockedReason, e.RequestID)
		}
	}
	if bad != "" {
		b.mu.Lock()
		b.elsewhere = append(b.elsewhere, bad)
		b.mu.Unlock()
	}
}

// fromElsewhere is what watch recorded.
func (b *browser) fromElsewhere() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.elsewhere)
}

func newBrowser(t *testing.T, exe, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		// Chromium makes its singleton socket directory in TMPDIR and
		// leaves it: a directory of the test's own goes with the test.
		chromedp.Env("TMPDIR="+t.TempDir()),
		chromedp.NoSandbox, // the tests run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser, which lives as long as that run's
	// context: ctx itself, not one with a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	b := &browser{t: t, ctx: ctx, url: base, out: t.ArtifactDir()}
	if err := chromedp.Listen(ctx, b.watch); err != nil {
		t.Fatalf("watching the browser's requests: %v", err)
	}
	return b
}

// run runs actions, failing the test with what if they fail or outlast
// browserTimeout.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// waitFor polls a JavaScript condition until it is true.
func waitFor(js string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(browserTimeout), chromedp.WithPollingInterval(100*time.Millisecond))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := poll(ctx, t)
		return chromedp.Void{}, err
	}
}

// count is how many elements sel matches now.
func (b *browser) count(sel string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		b.t.Fatalf("browser: count %s: %v", sel, err)
	}
	return n
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// screenshot saves the page as name.png in the test's artifact directory
// (and in $PULLCACHE_SCREENSHOTS).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	dirs := []string{b.out}
	if d := os.Getenv(screenshotsEnv); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, name+".png"), png, 0o644); err != nil {
			b.t.Errorf("screenshot %s: %v", name, err)
		}
	}
	b.t.Logf("screenshot %s.png in %s", name, b.out)
}

func (b *browser) login() {
	b.t.Helper()
	b.run("sign in",
		chromedp.Navigate(b.url+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("secret")),
		chromedp.SendKeys(chromedp.ID("secret"), consoleToken),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("live")),
	)
}

// drop drags file onto the element sel, as a person dropping a file from
// their desktop.
func (b *browser) drop(sel, file string) {
	b.t.Helper()
	b.run("drop "+filepath.Base(file), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		js := fmt.Sprintf(`(function(){const r=document.querySelector(%q).getBoundingClientRect();return [r.x+r.width/2,r.y+r.height/2];})()`, sel)
		box, err := chromedp.Evaluate[[]float64](js)(ctx, t)
		if err != nil {
			return err
		}
		data := &input.DragData{Items: []*input.DragDataItem{}, Files: []string{file}, DragOperationsMask: 1}
		for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
			if _, err := cdp.Call(ctx, t, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: box[0], Y: box[1], Data: data}); err != nil {
				return fmt.Errorf("%s: %w", typ, err)
			}
		}
		return nil
	}))
}

// TestConsoleInABrowser drives the console in headless Chromium: the
// overview shows real figures after pulls; a docker save dropped on the
// upload page is imported, appears in the browse view and pulls through
// the mirror with crane, using the command the image page shows; a save
// made by image ID is refused, then accepted with a name; warm shows each
// image's progress to the end; an image pinned from its page shows
// pinned; a second save of a tag shows in its tag history; a signature
// and an SBOM attached at the upstream show as the image's referrers;
// garbage collection shows its preview, then runs; verify reports the
// store sound. It saves screenshots of the main pages.
func TestConsoleInABrowser(t *testing.T) {
	requireE2E(t)
	exe := chromium(t)
	requireTools(t, "crane", "regctl")
	ctx := context.Background()
	fx := loadFixtures(t)
	up := newUpstream(t, registry.WithReferrersSupport(true))
	up.push(t, fx.images...)
	data := shortTempDir(t)
	cfg := writeFile(t, filepath.Join(t.TempDir(), "pullcache.yml"), "admin_token: "+consoleToken+"\n")
	srv := startPullcache(t, data, map[string]string{"docker.io": up.url()}, "--config", cfg)
	base := "http://" + srv.addr

	// Pull one image twice: one cold, one from cache.
	first := fx.cases[0]
	for range 2 {
		checkPulled(t, first, craneClient{}.Pull(ctx, t, srv.addr, first.image.ref(), first.platform))
	}

	b := newBrowser(t, exe, base)
	b.login()
	t.Run("overview", func(t *testing.T) {
		// Nothing asks the registry API between this and the page, so
		// its figures must be what the metrics and the upstream say.
		requests := metricSum(t, srv.addr, "pullcache_http_requests_total", "")
		hits := metricSum(t, srv.addr, "pullcache_cache_requests_total", `result="hit"`) +
			metricSum(t, srv.addr, "pullcache_cache_requests_total", `result="stale"`)
		answers := metricSum(t, srv.addr, "pullcache_cache_requests_total", "")
		manifestGets := 0 // by tag and by digest, as clients sent them
		for _, r := range pullcacheRequests(srv.logs.String()) {
			if r.method == http.MethodGet && strings.Contains(r.path, "/manifests/") {
				manifestGets++
			}
		}
		b.run("overview with figures", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("requests")))
		if got, want := b.text("#requests"), fmt.Sprint(requests); requests == 0 || got != want {
			t.Errorf("requests %q after two pulls; pullcache_http_requests_total says %s", got, want)
		}
		saved := manifestGets - up.count("GET", "manifest")
		if got, want := b.text("#manifest-saved"), fmt.Sprint(saved); saved == 0 || got != want {
			t.Errorf("manifest GETs saved %q; clients sent %d, the upstream got %d", got, manifestGets, up.count("GET", "manifest"))
		}
		if got, want := b.text("#hit-ratio"), fmt.Sprintf("%.1f%%", 100*hits/answers); hits == 0 || got != want {
			t.Errorf("hit ratio %q after a pull from cache; pullcache_cache_requests_total says %s", got, want)
		}
		if got := b.text("#store-bytes"); got == "0 B" {
			t.Errorf("cache on disk %q after a pull", got)
		}
		if got := b.text("#upstreams"); !strings.Contains(got, "answering") {
			t.Errorf("upstream health %q, want the upstream answering", got)
		}
		b.screenshot("overview")
	})

	uploads := t.TempDir()
	t.Run("upload", func(t *testing.T) {
		saved := archivetest.LegacyImage{RepoTags: []string{"uploaded:v1"}, Layers: [][]byte{
			archivetest.Layer(t, "etc/os-release"), archivetest.Layer(t, "app/run", "app/config.json")}}
		file := archivetest.WriteFile(t, "uploaded.tar", archivetest.Tar(t, archivetest.LegacySave(saved)...))
		b.run("upload page", chromedp.Navigate(base+"/ui/upload"), chromedp.WaitVisible(chromedp.ID("drop")))
		b.drop("#drop", file)
		b.run("import finishes", chromedp.WaitVisible(chromedp.CSS(".imported-name")))
		if got := b.text(".imported-name"); got != "docker.io/library/uploaded:v1" {
			t.Errorf("imported %q", got)
		}
		b.screenshot("upload")

		b.run("browse shows it",
			chromedp.Navigate(base+"/ui/browse?q=uploaded"),
			chromedp.WaitVisible(chromedp.CSS("#matches a")),
		)
		b.run("image page", chromedp.Click(chromedp.CSS("#matches a")), chromedp.WaitVisible(chromedp.ID("layers")))
		cmd := strings.Fields(b.text(`pre[data-client="crane"]`))
		if len(cmd) != 5 {
			t.Fatalf("crane command %q", cmd)
		}
		cmd[4] = filepath.Join(uploads, cmd[4])
		run(ctx, t, []string{"HOME=" + uploads, "DOCKER_CONFIG=" + filepath.Join(uploads, ".docker")}, cmd[0], cmd[1:]...)
		checkPulledLayers(t, cmd[4], saved.Layers)
	})

	t.Run("save by image ID", func(t *testing.T) {
		byID := archivetest.WriteFile(t, "byid.tar", archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t))...))
		b.run("upload page", chromedp.Navigate(base+"/ui/upload"), chromedp.WaitVisible(chromedp.ID("drop")))
		b.drop("#drop", byID)
		b.run("asks for a name", chromedp.WaitVisible(chromedp.ID("name-needed")))
		if got := b.text("#upload-message"); !strings.Contains(got, "no repository:tag") {
			t.Errorf("refusal %q does not say the save has no name", got)
		}
		// The phase that failed says so; no bar is left as if still going.
		if n := b.count("progress.failed"); n != 1 {
			t.Errorf("%d progress bars marked failed after the refusal, want 1", n)
		}
		b.screenshot("upload-needs-name")
		b.run("retry with a name",
			chromedp.SendKeys(chromedp.ID("retry-tag"), "team/byid:1"),
			chromedp.Click(chromedp.ID("retry")),
			chromedp.WaitVisible(chromedp.CSS(".imported-name")),
		)
		if got := b.text(".imported-name"); got != "docker.io/team/byid:1" {
			t.Errorf("imported %q", got)
		}
		if n := b.count("progress.failed"); n != 0 {
			t.Errorf("%d progress bars still marked failed after the import", n)
		}
	})

	t.Run("warm", func(t *testing.T) {
		var images []string
		for _, im := range fx.images[1:] {
			images = append(images, im.ref())
		}
		_, mark := up.requestsSince(0)
		b.run("warm",
			chromedp.Navigate(base+"/ui/warm"),
			chromedp.WaitVisible(chromedp.ID("images")),
			chromedp.SendKeys(chromedp.ID("images"), strings.Join(images, "\n")),
			chromedp.Click(chromedp.ID("warm-start")),
			waitFor(fmt.Sprintf(`document.querySelectorAll("#warm-table tr.done").length === %d`, len(images))),
			chromedp.WaitVisible(chromedp.ID("warm-summary")),
		)
		if got, want := b.text("#warm-summary"), fmt.Sprintf("Warmed %d of %d images.", len(images), len(images)); got != want {
			t.Errorf("summary %q, want %q", got, want)
		}
		b.screenshot("warm")
		// Only the warm asked the upstream anything since mark.
		during, _ := up.requestsSince(mark)
		for _, im := range fx.images[1:] {
			prefix := "GET /v2/library/" + im.name + "/manifests/"
			if !slices.ContainsFunc(during, func(r string) bool { return strings.HasPrefix(r, prefix) }) {
				t.Errorf("%s: the warm fetched no manifest of it from the upstream; it asked: %q", im.ref(), during)
			}
		}
	})

	t.Run("pin", func(t *testing.T) {
		page := base + "/ui/image?ref=docker.io/" + first.image.ref()
		b.run("pin from the image page",
			chromedp.Navigate(page),
			chromedp.WaitVisible(chromedp.ID("pin")),
			chromedp.Click(chromedp.ID("pin")),
			chromedp.WaitVisible(chromedp.ID("unpin")),
		)
		if got := b.text("#pinned"); !strings.Contains(got, "pinned") {
			t.Errorf("after pinning, the page says %q", got)
		}
		b.run("the repository page shows it pinned",
			chromedp.Navigate(base+"/ui/repo?name=docker.io/library/"+first.image.name),
			waitFor(`[...document.querySelectorAll("#tags .badge")].some(e => e.textContent === "pinned")`),
		)
	})

	t.Run("tag history", func(t *testing.T) {
		second := archivetest.LegacyImage{RepoTags: []string{"uploaded:v1"}, Layers: [][]byte{archivetest.Layer(t, "app/run", "app/v2")}}
		file := archivetest.WriteFile(t, "uploaded-v2.tar", archivetest.Tar(t, archivetest.LegacySave(second)...))
		b.run("upload page", chromedp.Navigate(base+"/ui/upload"), chromedp.WaitVisible(chromedp.ID("drop")))
		b.drop("#drop", file)
		b.run("the new save is imported", chromedp.WaitVisible(chromedp.CSS(".imported-name")))
		b.run("the tag's history lists both digests",
			chromedp.Navigate(base+"/ui/image?ref=docker.io/library/uploaded:v1"),
			waitFor(`document.querySelectorAll("#tag-history tbody tr").length === 2`),
		)
		if got := b.text("#tag-history tbody tr:first-child"); !strings.Contains(got, "current") {
			t.Errorf("the newest entry %q is not marked current", got)
		}
		b.screenshot("image-history")
	})

	t.Run("referrers", func(t *testing.T) {
		pushSubject(t, up.host)
		rc := newRegctl(ctx, t, up.host, srv.addr)
		sig, sbom := attach(ctx, t, rc, up.host)
		// A client asking the mirror for the referrers is what makes it
		// keep their list.
		if got := rc.referrers(ctx, t, srv.addr+"/library/app:v1"); len(got) != 2 {
			t.Fatalf("referrers through the mirror: %v", keys(got))
		}
		b.run("the image page lists them",
			chromedp.Navigate(base+"/ui/image?ref=docker.io/library/app:v1"),
			waitFor(`document.querySelectorAll("#referrers tbody tr").length === 2`),
		)
		got := b.text("#referrers")
		for _, want := range []string{e2eSigType, e2eSBOMType, sig[:19], sbom[:19]} {
			if !strings.Contains(got, want) {
				t.Errorf("referrers %q lack %q", got, want)
			}
		}
		b.screenshot("image")
	})

	t.Run("gc", func(t *testing.T) {
		b.run("preview",
			chromedp.Navigate(base+"/ui/maintenance"),
			chromedp.WaitVisible(chromedp.ID("gc-preview")),
			waitFor(`document.getElementById("gc-run") === null`),
			chromedp.Click(chromedp.ID("gc-preview")),
			chromedp.WaitVisible(chromedp.ID("gc-run")),
		)
		if got := b.text("#gc-report"); !strings.Contains(got, "would free") {
			t.Errorf("preview %q", got)
		}
		b.screenshot("maintenance")
		b.run("run",
			chromedp.Click(chromedp.ID("gc-run")),
			chromedp.WaitVisible(chromedp.ID("gc-done")),
		)
		if n := b.count("#gc-run"); n != 0 {
			t.Errorf("after the run the page still offers to run (%d buttons)", n)
		}
	})

	t.Run("verify", func(t *testing.T) {
		b.run("verify",
			chromedp.Navigate(base+"/ui/maintenance"),
			chromedp.WaitVisible(chromedp.ID("verify-start")),
			chromedp.Click(chromedp.ID("verify-start")),
			waitFor(`document.getElementById("verify-message").textContent.startsWith("Sound")`),
		)
		row := strings.Fields(b.text(`#verify-report tr[data-key="files"]`))
		if len(row) == 0 || row[len(row)-1] == "0" {
			t.Errorf("verify report's files row %q, want the files hashed", row)
		}
	})

	t.Run("phone", func(t *testing.T) {
		b.run("narrow overview", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("requests")))
		b.screenshot("overview-phone")
		b.run("wide again", chromedp.EmulateViewport(1280, 900))
	})

	// Every page above loaded with nothing from anywhere but the mirror.
	if got := b.fromElsewhere(); len(got) > 0 {
		t.Errorf("the pages asked for %d things from elsewhere, had loads blocked or answered an error: %v", len(got), got)
	}
}

// checkPulledLayers: the image tarball a client pulled holds exactly the
// uploaded layers, by their digests (the layers are uncompressed tars,
// so each one's sha256 is its diff ID), read with go-containerregistry.
func checkPulledLayers(t *testing.T, file string, layers [][]byte) {
	t.Helper()
	img, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		t.Fatalf("the pulled image %s: %v", file, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var want []v1.Hash
	for _, l := range layers {
		h, _, err := v1.SHA256(bytes.NewReader(l))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, h)
	}
	if !slices.Equal(cfg.RootFS.DiffIDs, want) {
		t.Errorf("pulled layers %v, want the uploaded %v", cfg.RootFS.DiffIDs, want)
	}
	got, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range got {
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil || h != d {
			t.Errorf("layer %d of the pulled file hashes to %s, its diff ID is %s (%v)", i, h, d, err)
		}
	}
}

// metricSum adds up a metric's series in pullcache's /metrics whose labels
// contain label ("" for all).
func metricSum(t *testing.T, addr, name, label string) float64 {
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
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		series, v, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) || !strings.Contains(series, label) {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum += f
	}
	return sum
}
