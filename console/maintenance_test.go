package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
	"github.com/pullcache/pullcache/cache"
)

func has(t *testing.T, what string, a answer, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(a.body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

func hasNot(t *testing.T, what string, a answer, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(a.body, w) {
			t.Errorf("%s has %q", what, w)
		}
	}
}

func wantStatus(t *testing.T, what string, a answer, want int) {
	t.Helper()
	if a.status != want {
		t.Errorf("%s: status %d, want %d\n%s", what, a.status, want, a.body)
	}
}

func listed(t *testing.T, s *cache.Store, name string) (admin.Image, bool) {
	t.Helper()
	list, err := admin.List(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range list {
		if img.Name == name {
			return img, true
		}
	}
	return admin.Image{}, false
}

func TestMaintenancePage(t *testing.T) {
	e := newEnvWith(t, tokenAuth{}, cache.Options{Dir: t.TempDir(), Pins: []string{"docker.io/library/golang:*"}})
	e.importLegacy("app:v1")
	b := e.signedIn()
	a := b.get("/ui/maintenance")
	wantStatus(t, "maintenance", a, http.StatusOK)
	has(t, "maintenance", a, `id="df-blobs"`, `id="df-pinned"`, `id="gc-preview"`, `id="pin-form"`, `id="verify-form"`, `id="rm-form"`,
		"docker.io/library/golang:*", `>docker.io/library/app:v1</a>`)
	hasNot(t, "maintenance before a preview", a, `id="gc-run"`, `id="pinned-over-bound"`)
}

// TestGCPreviewThenRun: the page offers to collect only below a preview
// of what it would free; running it frees that.
func TestGCPreviewThenRun(t *testing.T) {
	dir := t.TempDir()
	first, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	importOwn(t, first, "keep", "keep:v1")
	importOwn(t, first, "old", "old:v1")
	if _, err := admin.Unpin(first, []string{"old:v1"}, ""); err != nil {
		t.Fatal(err)
	}
	first.Close()
	// Reopened with a bound under what it holds (the index alone takes
	// more), the unpinned image must go.
	e := newEnvWith(t, tokenAuth{}, cache.Options{Dir: dir, MaxSize: 1 << 20, Housekeeping: -1})
	b := e.signedIn()

	preview := b.post("/ui/gc", url.Values{"dry_run": {"1"}})
	wantStatus(t, "preview", preview, http.StatusOK)
	has(t, "preview", preview, "A collection now would free", `<span id="gc-evicted">1</span>`, "docker.io/library/old:v1", `id="gc-run"`)
	if _, ok := listed(t, e.store, "docker.io/library/old:v1"); !ok {
		t.Fatal("the preview evicted the image")
	}

	run := b.post("/ui/gc", url.Values{})
	wantStatus(t, "run", run, http.StatusOK)
	has(t, "run", run, "The collection freed", `<span id="gc-evicted">1</span>`)
	hasNot(t, "run", run, `id="gc-run"`)
	if _, ok := listed(t, e.store, "docker.io/library/old:v1"); ok {
		t.Error("the collection left the unpinned image over the bound")
	}
	if _, ok := listed(t, e.store, "docker.io/library/keep:v1"); !ok {
		t.Error("the collection evicted the pinned image")
	}
	has(t, "overview after the run", b.get("/ui/"), `<span id="evicted-images">1</span>`)
}

func TestPinnedOverTheBoundIsLoud(t *testing.T) {
	dir := t.TempDir()
	first, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	importInto(t, first, "app:v1")
	first.Close()
	e := newEnvWith(t, tokenAuth{}, cache.Options{Dir: dir, MaxSize: 8 << 10, Housekeeping: -1})
	b := e.signedIn()
	// Pins are shown once the start-up scan has counted the blobs (it
	// runs after the image graph has loaded, in the background); before
	// that the pages show use without them, by design.
	waitScanned(t, e.store)
	for _, p := range []string{"/ui/", "/ui/maintenance"} {
		has(t, p, b.get(p), `id="pinned-over-bound"`, "exceed the size bound")
	}
}

func TestPinAndUnpin(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	importOwn(t, e.store, "pulled", "pulled:v1")
	if _, err := admin.Unpin(e.store, []string{"pulled:v1"}, ""); err != nil {
		t.Fatal(err)
	}
	b := e.signedIn()
	const page = "/ui/image?ref=docker.io/library/pulled:v1"
	has(t, "image page, unpinned", b.get(page), `id="pin"`)

	a := b.post("/ui/pin", url.Values{"image": {"docker.io/library/pulled:v1"}, "next": {page}})
	wantStatus(t, "pin", a, http.StatusSeeOther)
	if loc := a.header.Get("Location"); loc != page {
		t.Errorf("pin went on to %q, want back to %q", loc, page)
	}
	if img, _ := listed(t, e.store, "docker.io/library/pulled:v1"); !img.Pinned {
		t.Error("not pinned")
	}
	has(t, "image page, pinned", b.get(page), `<span class="badge good">pinned</span>`, `id="unpin"`)

	wantStatus(t, "unpin", b.post("/ui/unpin", url.Values{"image": {"docker.io/library/pulled:v1"}, "next": {page}}), http.StatusSeeOther)
	if img, _ := listed(t, e.store, "docker.io/library/pulled:v1"); img.Pinned {
		t.Error("still pinned")
	}
	again := b.post("/ui/unpin", url.Values{"image": {"docker.io/library/pulled:v1"}, "next": {page}})
	wantStatus(t, "unpinning what is not pinned", again, http.StatusNotFound)
	has(t, "unpinning what is not pinned", again, "A pattern may pin it")

	a = b.post("/ui/pin", url.Values{"image": {"docker.io/library/golang:*"}, "next": {"/ui/maintenance"}})
	wantStatus(t, "pin a pattern", a, http.StatusSeeOther)
	has(t, "maintenance", b.get("/ui/maintenance"), `<code>docker.io/library/golang:*</code>`)
	wantStatus(t, "a bad pattern", b.post("/ui/pin", url.Values{"image": {"golang:["}}), http.StatusBadRequest)
	wantStatus(t, "no image", b.post("/ui/pin", url.Values{}), http.StatusBadRequest)
	if a := b.post("/ui/pin", url.Values{"image": {"app:v9"}, "next": {"https://evil.example/ui/"}}); a.header.Get("Location") != "/ui/" {
		t.Errorf("pin went on to %q, want to stay in the console", a.header.Get("Location"))
	}
}

// TestRemoveAsksFirst: delete shows what would go and deletes nothing
// until confirmed.
func TestRemoveAsksFirst(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	importOwn(t, e.store, "gone", "gone:v1")
	importOwn(t, e.store, "stays", "stays:v1")
	b := e.signedIn()
	form := url.Values{"image": {"docker.io/library/gone:v1"}, "next": {"/ui/repo?name=docker.io/library/gone"}}
	preview := b.post("/ui/rm", form)
	wantStatus(t, "preview", preview, http.StatusOK)
	has(t, "preview", preview, "would free", `<span id="rm-evicted">1</span>`, `id="rm-confirm"`, `name="confirm" value="yes"`)
	if _, ok := listed(t, e.store, "docker.io/library/gone:v1"); !ok {
		t.Fatal("the preview deleted the image")
	}

	form.Set("confirm", "yes")
	done := b.post("/ui/rm", form)
	wantStatus(t, "delete", done, http.StatusOK)
	has(t, "delete", done, `id="rm-done"`, `<span id="rm-evicted">1</span>`)
	if _, ok := listed(t, e.store, "docker.io/library/gone:v1"); ok {
		t.Error("still there after the confirmed delete")
	}
	if _, ok := listed(t, e.store, "docker.io/library/stays:v1"); !ok {
		t.Error("the other image went too")
	}

	unknown := b.post("/ui/rm", url.Values{"image": {"docker.io/library/none:v1"}})
	wantStatus(t, "an unknown image", unknown, http.StatusNotFound)
	hasNot(t, "an unknown image", unknown, `id="rm-confirm"`)

	// The repository page's form sends several images.
	importOwn(t, e.store, "multi", "multi:a", "multi:b")
	several := b.post("/ui/rm", url.Values{"image": {"docker.io/library/multi:a", "docker.io/library/multi:b"}, "confirm": {"yes"}})
	has(t, "delete both tags", several, `<span id="rm-evicted">1</span>`)
}

func TestImagePageShowsReferrersAndTagHistory(t *testing.T) {
	e := newEnv(t, tokenAuth{})
	dir, subject, sig, sbom := archivetest.ReferrerLayoutDir(t, "docker.io/library/signed:v1")
	if _, err := admin.ImportFile(e.store, dir, archive.Options{TempDir: t.TempDir()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	importOwn(t, e.store, "first", "moved:v1")
	importOwn(t, e.store, "second", "moved:v1") // the tag moves
	b := e.signedIn()

	signed := b.get("/ui/image?ref=docker.io/library/signed:v1")
	wantStatus(t, "signed", signed, http.StatusOK)
	has(t, "signed", signed, `id="referrers"`, archivetest.SignatureType, "application/spdx", // + is escaped
		"@sha256%3a"+sig.Hex+`"`, sbom.String()[:19])
	wantStatus(t, "the referrer's page", b.get("/ui/image?ref=docker.io/library/signed@"+sig.String()), http.StatusOK)
	has(t, "signed", signed, subject.String())

	moved := b.get("/ui/image?ref=docker.io/library/moved:v1")
	has(t, "moved", moved, `id="tag-history"`, "current", ">view</a>")
	if n := strings.Count(moved.body, "<tr><td><code title=\"sha256:"); n < 2 {
		t.Errorf("tag history has %d rows, want the two digests", n)
	}
	has(t, "never listed", b.get("/ui/image?ref=docker.io/library/moved:v1"), "None known")
}

// waitScanned waits, up to a minute, for store's start-up scan to end.
func waitScanned(t *testing.T, store *cache.Store) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for !store.Usage().Ready {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the store's start-up scan did not end within a minute")
		}
	}
}
