package admin_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
	"github.com/pullcache/pullcache/cache"
)

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	if resp.StatusCode != http.StatusOK {
		code, msg := apiErr(t, resp)
		t.Fatalf("status %d %s: %s", resp.StatusCode, code, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestMaintenanceEndpoints(t *testing.T) {
	s := openStore(t)
	dir, _ := archivetest.OCILayoutDir(t, "docker.io/library/app:v1", "ghcr.io/org/other:v2")
	if _, err := admin.ImportFile(s, dir, archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	srv := newAPI(t, s, admin.Options{})

	imgs := decode[[]admin.Image](t, get(t, srv.URL+"/admin/images?q=library/app:*"))
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/app:v1" || imgs[0].Size <= 0 || imgs[0].UniqueSize <= 0 || !imgs[0].Pinned {
		t.Fatalf("images?q= %+v", imgs)
	}
	if imgs[0].Repository != "library/app" || imgs[0].Tag != "v1" || imgs[0].Registry != "docker.io" || imgs[0].MediaType == "" {
		t.Errorf("fields: %+v", imgs[0])
	}

	unpinned := decode[map[string][]string](t, post(t, srv.URL+"/admin/unpin", "", []byte(`{"images":["app:v1"]}`)))
	if got := unpinned["unpinned"]; len(got) != 1 || got[0] != "docker.io/library/app:v1" {
		t.Errorf("unpin: %v", unpinned)
	}
	if resp := post(t, srv.URL+"/admin/unpin", "", []byte(`{"images":["app:v1"]}`)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unpinning twice: %d", resp.StatusCode)
	}
	pinned := decode[map[string][]string](t, post(t, srv.URL+"/admin/pin", "", []byte(`{"images":["docker.io/library/app:*"]}`)))
	if len(pinned["pinned"]) != 1 {
		t.Errorf("pin: %v", pinned)
	}
	if resp := post(t, srv.URL+"/admin/pin", "", []byte(`{"images":["app:*"]}`)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a pattern without its registry: %d", resp.StatusCode)
	}

	df := decode[admin.DF](t, get(t, srv.URL+"/admin/df"))
	if df.Blobs <= 0 || df.Index <= 0 || df.Pinned <= 0 || df.Used != df.Blobs+df.Index+df.Tmp {
		t.Errorf("df: %+v", df)
	}

	dry := decode[cache.GCReport](t, post(t, srv.URL+"/admin/rm?dry_run=1", "", []byte(`{"images":["ghcr.io/org/other:v2"]}`)))
	if !dry.DryRun || dry.Evicted != 1 || dry.Freed <= 0 {
		t.Errorf("rm dry run: %+v", dry)
	}
	if _, err := s.Tag(cache.Repo{Registry: "ghcr.io", Name: "org/other"}, "v2"); err != nil {
		t.Fatalf("a dry run removed the tag: %v", err)
	}
	rm := decode[cache.GCReport](t, post(t, srv.URL+"/admin/rm", "", []byte(`{"images":["ghcr.io/org/other:v2"]}`)))
	if rm.Evicted != 1 || rm.Freed <= 0 {
		t.Errorf("rm: %+v", rm)
	}
	if resp := post(t, srv.URL+"/admin/rm", "", []byte(`{"images":["ghcr.io/org/other:v2"]}`)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("rm of a removed image: %d", resp.StatusCode)
	}

	gc := decode[cache.GCReport](t, post(t, srv.URL+"/admin/gc?dry_run=1", "", nil))
	if !gc.DryRun {
		t.Errorf("gc: %+v", gc)
	}
	v := decode[cache.VerifyReport](t, post(t, srv.URL+"/admin/verify", "", nil))
	if !v.Clean() || v.Files == 0 {
		t.Errorf("verify: %+v", v)
	}

	hist := decode[[]admin.TagHistory](t, get(t, srv.URL+"/admin/history?image=app:v1"))
	if len(hist) != 1 || len(hist[0].Entries) != 1 || hist[0].Entries[0].Digest.String() != imgs[0].Digest {
		t.Errorf("history: %+v", hist)
	}
	if resp := get(t, srv.URL+"/admin/history?image=nothing:1"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("history of an unknown tag: %d", resp.StatusCode)
	}
}

func TestHistoryTravelsThroughExportAndImport(t *testing.T) {
	src := openStore(t)
	if _, err := importBytes(t, src, archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, "app:v1"))...), archive.Options{}); err != nil {
		t.Fatal(err)
	}
	repo := cache.Repo{Registry: "docker.io", Name: "library/app"}
	before, _ := src.History(repo, "v1")
	old := before[0]
	old.Digest.Hex = strings.Repeat("0", 64) // an earlier digest of the tag
	old.First, old.Last = at.Add(-48e9), at.Add(-24e9)
	if err := src.MergeHistory(repo, "v1", []cache.HistoryEntry{old}); err != nil {
		t.Fatal(err)
	}
	bundle, _ := exportBytes(t, src, admin.ExportOptions{All: true})
	dst := openStore(t)
	if _, err := admin.ImportReader(dst, bytes.NewReader(bundle), archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	hist, err := dst.History(repo, "v1")
	if err != nil || len(hist) != 2 || hist[1].Digest != old.Digest {
		t.Fatalf("history after import: %+v %v", hist, err)
	}
}

func TestImportRefusesAnArchiveThatCannotFit(t *testing.T) {
	s, err := cache.Open(cache.Options{Dir: t.TempDir(), MaxSize: 64 << 20, Housekeeping: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := archivetest.Tar(t, archivetest.File("layer", bytes.Repeat([]byte{1}, 70<<20)))
	_, err = importBytes(t, s, big, archive.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("err = %v", err)
	}
}

func TestVerifyStreamsItsProgress(t *testing.T) {
	s := openStore(t)
	dir, _ := archivetest.OCILayoutDir(t, "docker.io/library/app:v1", "")
	if _, err := admin.ImportFile(s, dir, archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	srv := newAPI(t, s, admin.Options{})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/verify", nil)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("content type %q", ct)
	}
	dec := json.NewDecoder(resp.Body)
	var events []admin.VerifyEvent
	for {
		var ev admin.VerifyEvent
		if err := dec.Decode(&ev); err != nil {
			break
		}
		events = append(events, ev)
	}
	if len(events) < 2 {
		t.Fatalf("events: %+v", events)
	}
	last := events[len(events)-1]
	if last.Report == nil || !last.Report.Clean() || last.Report.Files == 0 {
		t.Errorf("last event: %+v", last)
	}
	if !last.Clean {
		t.Error("the report's event does not say clean")
	}
	if events[0].Done <= 0 {
		t.Errorf("first event: %+v", events[0])
	}
}
