package admin_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
	"github.com/pullcache/pullcache/cache"
)

var at = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func openStore(t *testing.T) *cache.Store {
	t.Helper()
	s, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func importBytes(t *testing.T, s *cache.Store, b []byte, opts archive.Options) ([]admin.Imported, error) {
	t.Helper()
	opts.TempDir = t.TempDir()
	return admin.ImportFile(s, archivetest.WriteFile(t, "in.tar", b), opts, at)
}

func tagDigest(t *testing.T, s *cache.Store, registry, repo, tag string) v1.Hash {
	t.Helper()
	tg, err := s.Tag(cache.Repo{Registry: registry, Name: repo}, tag)
	if err != nil {
		t.Fatalf("tag %s/%s:%s: %v", registry, repo, tag, err)
	}
	return tg.Digest
}

func TestImportLegacyStoresTaggedPinnedImage(t *testing.T) {
	s := openStore(t)
	im := archivetest.TwoLayerImage(t, "app:v1")
	done, err := importBytes(t, s, archivetest.Tar(t, archivetest.LegacySave(im)...), archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].Name != "docker.io/library/app:v1" {
		t.Fatalf("imported %+v", done)
	}
	d := tagDigest(t, s, "docker.io", "library/app", "v1")
	m, err := s.Manifest(d)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pinned(d) {
		t.Error("manifest not pinned")
	}
	cfg := archivetest.Digest(im.Config())
	if m.Refs[0].Digest != cfg {
		t.Errorf("config %s, want image ID %s", m.Refs[0].Digest, cfg)
	}
	for _, r := range m.Refs {
		if !s.HasBlob(r.Digest) {
			t.Errorf("blob %s not stored", r.Digest)
		}
	}
}

func TestImportOCIIndexKeepsDigests(t *testing.T) {
	s := openStore(t)
	dir, digests := archivetest.OCILayoutDir(t, "docker.io/library/app:v1", "ghcr.io/org/multi:v2")
	if _, err := admin.ImportFile(s, dir, archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	if got := tagDigest(t, s, "docker.io", "library/app", "v1"); got != digests[0] {
		t.Errorf("app:v1 → %s, want %s", got, digests[0])
	}
	if got := tagDigest(t, s, "ghcr.io", "org/multi", "v2"); got != digests[1] {
		t.Errorf("multi:v2 → %s, want %s", got, digests[1])
	}
	idx, err := s.Manifest(digests[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, child := range idx.Refs {
		if _, err := s.Manifest(child.Digest); err != nil {
			t.Errorf("child %s: %v", child.Digest, err)
		}
	}
}

// storedFiles lists the blob files of a store.
func storedFiles(t *testing.T, s *cache.Store) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(s.Dir(), "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBadArchivesLeaveTheStoreUnchanged(t *testing.T) {
	for _, c := range archivetest.BadArchives(t) {
		t.Run(c.Name, func(t *testing.T) {
			s := openStore(t)
			_, err := importBytes(t, s, c.Archive, archive.Options{})
			if !errors.Is(err, c.Kind) {
				t.Fatalf("err = %v, want %v", err, c.Kind)
			}
			if !strings.Contains(err.Error(), c.Names) {
				t.Errorf("error %q does not name %q", err, c.Names)
			}
			if files := storedFiles(t, s); len(files) != 0 {
				t.Errorf("blobs stored: %v", files)
			}
			if list, _ := admin.List(s); len(list) != 0 {
				t.Errorf("tags stored: %v", list)
			}
		})
	}
}

func TestImageIDOnlySaveLeavesStoreUnchanged(t *testing.T) {
	s := openStore(t)
	_, err := importBytes(t, s, archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t))...), archive.Options{})
	if !errors.Is(err, archive.ErrNoName) {
		t.Fatalf("err = %v, want ErrNoName", err)
	}
	if files := storedFiles(t, s); len(files) != 0 {
		t.Errorf("blobs stored: %v", files)
	}
}

func exportBytes(t *testing.T, s *cache.Store, opts admin.ExportOptions) ([]byte, admin.ExportResult) {
	t.Helper()
	var buf bytes.Buffer
	res, err := admin.Export(s, opts, &buf)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	return buf.Bytes(), res
}

func TestExportThenImportIntoAFreshStoreKeepsDigests(t *testing.T) {
	src := openStore(t)
	dir, digests := archivetest.OCILayoutDir(t, "docker.io/library/app:v1", "ghcr.io/org/multi:v2")
	if _, err := admin.ImportFile(src, dir, archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	legacy := archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, "old:1"))...)
	if _, err := importBytes(t, src, legacy, archive.Options{}); err != nil {
		t.Fatal(err)
	}
	oldDigest := tagDigest(t, src, "docker.io", "library/old", "1")
	bundle, res := exportBytes(t, src, admin.ExportOptions{All: true})
	if len(res.Exported) != 3 {
		t.Fatalf("exported %v, want 3 images", res.Exported)
	}
	dst := openStore(t)
	if _, err := admin.ImportReader(dst, bytes.NewReader(bundle), archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	want := map[[3]string]v1.Hash{
		{"docker.io", "library/app", "v1"}: digests[0],
		{"ghcr.io", "org/multi", "v2"}:     digests[1],
		{"docker.io", "library/old", "1"}:  oldDigest,
	}
	for k, d := range want {
		if got := tagDigest(t, dst, k[0], k[1], k[2]); got != d {
			t.Errorf("%v → %s, want %s", k, got, d)
		}
	}
}

func TestExportOnePlatformOfAnIndex(t *testing.T) {
	s := openStore(t)
	dir, digests := archivetest.OCILayoutDir(t, "x:1", "ghcr.io/org/multi:v2")
	if _, err := admin.ImportFile(s, dir, archive.Options{TempDir: t.TempDir()}, at); err != nil {
		t.Fatal(err)
	}
	idx, err := s.Manifest(digests[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Refs) != 2 {
		t.Fatalf("the imported index has %d children, want the 2 of archivetest.TwoPlatformIndex", len(idx.Refs))
	}
	// TwoPlatformIndex gives each child a platform: without one the
	// export below would not choose by platform at all.
	p := idx.Refs[0].Platform
	if p == nil {
		t.Fatal("the imported index's first child has no platform")
	}
	n := archive.Name{Registry: "ghcr.io", Repository: "org/multi", Tag: "v2"}
	bundle, _ := exportBytes(t, s, admin.ExportOptions{Names: []archive.Name{n}, Platform: p})
	a, err := archive.Read(bytes.NewReader(bundle), archive.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.Images[0].Manifests[0].Digest; got != idx.Refs[0].Digest {
		t.Errorf("exported %s, want the platform's manifest %s", got, idx.Refs[0].Digest)
	}
}

func TestExportOfAnUncachedImageFails(t *testing.T) {
	s := openStore(t)
	n := archive.Name{Registry: "docker.io", Repository: "library/none", Tag: "1"}
	if _, err := admin.Export(s, admin.ExportOptions{Names: []archive.Name{n}}, &bytes.Buffer{}); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

// apiErr decodes an OCI error body.
func apiErr(t *testing.T, resp *http.Response) (code, msg string) {
	t.Helper()
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("error body: %v %+v", err, body)
	}
	return body.Errors[0].Code, body.Errors[0].Message
}

func newAPI(t *testing.T, s *cache.Store, opts admin.Options) *httptest.Server {
	opts.Store = s
	opts.TempDir = t.TempDir()
	opts.Now = func() time.Time { return at }
	srv := httptest.NewServer(admin.Handler(opts))
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url, token string, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestUploadErrors(t *testing.T) {
	good := archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, "app:v1"))...)
	idOnly := archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t))...)
	evil := archivetest.Tar(t, archivetest.File("../evil", []byte("x")))
	cases := []struct {
		name, token string
		body        []byte
		status      int
		code, says  string
	}{
		{"no token", "", good, http.StatusUnauthorized, "UNAUTHORIZED", "token"},
		{"wrong token", "nope-nope-nope-nope", good, http.StatusUnauthorized, "UNAUTHORIZED", "token"},
		{"too large", "secret-token-0123456789", bytes.Repeat([]byte{0}, 64<<10), http.StatusRequestEntityTooLarge, "SIZE_INVALID", "limit"},
		{"unsafe", "secret-token-0123456789", evil, http.StatusBadRequest, "ARCHIVE_INVALID", "../evil"},
		{"no name", "secret-token-0123456789", idOnly, http.StatusBadRequest, "NAME_INVALID", "--tag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openStore(t)
			srv := newAPI(t, s, admin.Options{Token: "secret-token-0123456789", UploadLimit: 32 << 10})
			resp := post(t, srv.URL+"/admin/import", c.token, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			code, msg := apiErr(t, resp)
			if code != c.code {
				t.Errorf("code %s, want %s", code, c.code)
			}
			if !strings.Contains(msg, c.says) {
				t.Errorf("message %q does not mention %q", msg, c.says)
			}
			if files := storedFiles(t, s); len(files) != 0 {
				t.Errorf("blobs stored: %v", files)
			}
		})
	}
}

func TestUploadImportsAndListsAndExports(t *testing.T) {
	s := openStore(t)
	srv := newAPI(t, s, admin.Options{UploadLimit: 1 << 20})
	idOnly := archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t))...)
	resp := post(t, srv.URL+"/admin/import?registry=registry.lan&tag=team/app:7", "", idOnly)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var done []admin.Imported
	if err := json.NewDecoder(resp.Body).Decode(&done); err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].Name != "registry.lan/team/app:7" {
		t.Fatalf("imported %+v", done)
	}
	list, err := http.Get(srv.URL + "/admin/images")
	if err != nil {
		t.Fatal(err)
	}
	defer list.Body.Close()
	var images []admin.Image
	if err := json.NewDecoder(list.Body).Decode(&images); err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || images[0].Digest != done[0].Digest || !images[0].Pinned {
		t.Errorf("images %+v", images)
	}
	exp, err := http.Get(srv.URL + "/admin/export?image=registry.lan/team/app:7")
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Body.Close()
	a, err := archive.Read(exp.Body, archive.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.Images[0].Manifests[0].Digest.String(); got != done[0].Digest {
		t.Errorf("exported %s, want %s", got, done[0].Digest)
	}
}

func TestExportEndpointAnswersJSONForAnUnknownImage(t *testing.T) {
	srv := newAPI(t, openStore(t), admin.Options{})
	resp, err := http.Get(srv.URL + "/admin/export?image=nothing:1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	if code, _ := apiErr(t, resp); code != "MANIFEST_UNKNOWN" {
		t.Errorf("code %s", code)
	}
}

// TestExportCarriesADockerLoadManifest: the bundle's manifest.json lists
// each exported image docker load can read, over the layout's own blobs
// (TestDockerSaveImportServeOffline loads one into a real engine).
func TestExportCarriesADockerLoadManifest(t *testing.T) {
	s := openStore(t)
	for _, name := range []string{"old:1", "ghcr.io/org/other:2"} {
		legacy := archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, name))...)
		if _, err := importBytes(t, s, legacy, archive.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	bundle, _ := exportBytes(t, s, admin.ExportOptions{All: true})
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[hdr.Name] = b
	}
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &entries); err != nil {
		t.Fatalf("manifest.json: %v\n%s", err, files["manifest.json"])
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.RepoTags...)
		if len(e.Layers) != 2 {
			t.Errorf("%v: %d layers, want 2", e.RepoTags, len(e.Layers))
		}
		for _, p := range append([]string{e.Config}, e.Layers...) {
			if _, ok := files[p]; !ok {
				t.Errorf("%v: %s is not in the bundle", e.RepoTags, p)
			}
		}
	}
	slices.Sort(names)
	if want := []string{"docker.io/library/old:1", "ghcr.io/org/other:2"}; !slices.Equal(names, want) {
		t.Errorf("manifest.json names %v, want %v", names, want)
	}
}
