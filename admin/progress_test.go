package admin_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/stats"
)

func postProgress(t *testing.T, url string, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// lines decodes an NDJSON stream.
func lines[T any](t *testing.T, resp *http.Response) []T {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type %q, want application/x-ndjson (status %d)", ct, resp.StatusCode)
	}
	var out []T
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("empty stream")
	}
	return out
}

func phases(events []admin.ImportEvent) map[string]int {
	out := map[string]int{}
	for _, e := range events {
		out[e.Phase]++
	}
	return out
}

func TestImportStreamsVerifyAndStoreProgress(t *testing.T) {
	s := openStore(t)
	srv := newAPI(t, s, admin.Options{UploadLimit: 1 << 20})
	resp := postProgress(t, srv.URL+"/admin/import", archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, "app:v1"))...))
	events := lines[admin.ImportEvent](t, resp)
	got := phases(events)
	for _, p := range []string{"verify", "store", "done"} {
		if got[p] == 0 {
			t.Errorf("no %q event in %+v", p, events)
		}
	}
	last := events[len(events)-1]
	if len(last.Imported) != 1 {
		t.Fatalf("last event %+v", last)
	}
	if last.Imported[0].Name != "docker.io/library/app:v1" {
		t.Errorf("imported %q", last.Imported[0].Name)
	}
	for _, e := range events {
		if e.Done > e.Total {
			t.Errorf("%s: %d of %d", e.Phase, e.Done, e.Total)
		}
	}
}

func TestImportStreamEndsWithTheRefusal(t *testing.T) {
	s := openStore(t)
	srv := newAPI(t, s, admin.Options{UploadLimit: 1 << 20})
	idOnly := archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t))...)
	events := lines[admin.ImportEvent](t, postProgress(t, srv.URL+"/admin/import", idOnly))
	last := events[len(events)-1]
	if last.Phase != "failed" {
		t.Fatalf("last event %+v, want failed", last)
	}
	if last.Error.Code != "NAME_INVALID" {
		t.Errorf("code %s", last.Error.Code)
	}
	detail, _ := last.Error.Detail.(map[string]any)
	if detail["reason"] != "NO_NAME" {
		t.Errorf("detail %v, want reason NO_NAME (the form asks for a name)", last.Error.Detail)
	}
	if files := storedFiles(t, s); len(files) != 0 {
		t.Errorf("blobs stored: %v", files)
	}
	// The same archive, named, goes in.
	events = lines[admin.ImportEvent](t, postProgress(t, srv.URL+"/admin/import?tag=team/app:7", idOnly))
	if last := events[len(events)-1]; last.Phase != "done" {
		t.Errorf("named retry ended %+v", last)
	}
}

func TestImportRefusedBeforeStreamingKeepsItsStatus(t *testing.T) {
	s := openStore(t)
	srv := newAPI(t, s, admin.Options{UploadLimit: 1 << 20})
	evil := archivetest.Tar(t, archivetest.File("../evil", []byte("x")))
	resp := postProgress(t, srv.URL+"/admin/import", evil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	code, msg := apiErr(t, resp)
	if code != "ARCHIVE_INVALID" {
		t.Errorf("code %s", code)
	}
	if !strings.Contains(msg, "../evil") {
		t.Errorf("message %q does not name the entry", msg)
	}
}

func TestStatsEndpoint(t *testing.T) {
	s := openStore(t)
	rec := stats.New(nil)
	rec.Answered(stats.Answer{Route: "manifest", Method: "GET", Status: 200, Source: "hit", Bytes: 10})
	rec.Answered(stats.Answer{Route: "blob", Method: "GET", Status: 503, Path: "/v2/x/blobs/y", Error: "UNAVAILABLE: boom"})
	if _, err := importBytes(t, s, archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, "app:v1"))...), archive.Options{}); err != nil {
		t.Fatal(err)
	}
	down := time.Now().Add(time.Minute)
	opts := admin.Options{Stats: rec, Upstreams: func() []admin.RegistryHealth {
		return []admin.RegistryHealth{{Registry: "docker.io", Endpoints: []admin.EndpointHealth{{Host: "registry-1.docker.io", DownUntil: down, LastError: "503"}}}}
	}}
	opts.Store = s
	srv := httptest.NewServer(admin.Handler(opts))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/admin/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st admin.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Total.Requests != 2 {
		t.Errorf("requests %d", st.Total.Requests)
	}
	if st.HitRatio != 1 {
		t.Errorf("hit ratio %v", st.HitRatio)
	}
	if st.ManifestGetsSaved != 1 {
		t.Errorf("manifest GETs saved %d", st.ManifestGetsSaved)
	}
	if !st.Disk.Ready {
		t.Error("disk figures not ready")
	}
	if st.Disk.Blobs == 0 {
		t.Error("blob bytes 0")
	}
	if st.Disk.Pinned != st.Disk.Blobs {
		t.Errorf("pinned %d of %d blob bytes, want all: the one image was imported", st.Disk.Pinned, st.Disk.Blobs)
	}
	if st.Evictions != (cache.EvictionTotals{}) {
		t.Errorf("evictions %+v before any", st.Evictions)
	}
	if len(st.Minutes) != 60 {
		t.Errorf("%d minutes", len(st.Minutes))
	}
	if len(st.Errors) != 1 {
		t.Errorf("errors %+v", st.Errors)
	}
	if len(st.Upstreams) != 1 {
		t.Fatalf("upstreams %+v", st.Upstreams)
	}
	if !st.Upstreams[0].Endpoints[0].Down {
		t.Error("an endpoint in its cooldown is not down")
	}
}

func TestImageEndpointDescribesLayersAndConfig(t *testing.T) {
	s := openStore(t)
	srv := newAPI(t, s, admin.Options{})
	im := archivetest.TwoLayerImage(t, "app:v1")
	if _, err := importBytes(t, s, archivetest.Tar(t, archivetest.LegacySave(im)...), archive.Options{}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/admin/image?image=app:v1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var info admin.ImageDetail
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if len(info.Layers) != 2 {
		t.Errorf("layers %+v", info.Layers)
	}
	if info.ConfigDigest != archivetest.Digest(im.Config()).String() {
		t.Errorf("config %s", info.ConfigDigest)
	}
	if info.Config == nil {
		t.Fatal("no config")
	}
	if info.Config.Platform != "linux/amd64" {
		t.Errorf("config platform %q", info.Config.Platform)
	}
	if !info.Pinned {
		t.Error("imported image not pinned")
	}
	if info.Size == 0 {
		t.Error("size 0")
	}
	byDigest, err := http.Get(srv.URL + "/admin/image?image=app@" + info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	byDigest.Body.Close()
	if byDigest.StatusCode != http.StatusOK {
		t.Errorf("by digest: status %d", byDigest.StatusCode)
	}
	other, err := http.Get(srv.URL + "/admin/image?image=other@" + info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	other.Body.Close()
	if other.StatusCode != http.StatusNotFound {
		t.Errorf("a digest through a repository it is not linked to: status %d, want 404", other.StatusCode)
	}
}

// TestWarmStreamsPerImageProgress warms through a registry standing in for
// the mirror.
func TestWarmStreamsPerImageProgress(t *testing.T) {
	mirror := httptest.NewServer(registry.New())
	t.Cleanup(mirror.Close)
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(mirror.URL, "http://") + "/library/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	srv := newAPI(t, openStore(t), admin.Options{Mirror: mirror.URL})
	resp := postProgress(t, srv.URL+"/admin/warm", []byte(`{"images": ["app:v1", "missing:1"]}`))
	events := lines[admin.WarmEvent](t, resp)
	finished := map[string]admin.WarmEvent{}
	for _, e := range events {
		if e.Finished {
			finished[e.Image] = e
		}
	}
	ok := finished["app:v1"]
	if ok.Error != "" {
		t.Errorf("app:v1 failed: %s", ok.Error)
	}
	if ok.Done == 0 {
		t.Error("app:v1: no bytes")
	}
	if ok.Done != ok.Total {
		t.Errorf("app:v1 finished at %d of %d bytes", ok.Done, ok.Total)
	}
	if bad := finished["missing:1"]; bad.Error == "" {
		t.Errorf("missing:1 finished %+v, want an error", bad)
	}
	last := events[len(events)-1]
	if len(last.Results) != 2 {
		t.Fatalf("last event %+v, want both results", last)
	}
}
