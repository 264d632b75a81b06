package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/admin"
	"github.com/pullcache/pullcache/archive/archivetest"
	"github.com/pullcache/pullcache/cache"
	"github.com/pullcache/pullcache/config"
)

// runCmd runs the CLI in-process and returns exit code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("pullcache %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// tagOf opens a data directory and returns what a tag points to.
func tagOf(t *testing.T, data, registry, repo, tag string) v1.Hash {
	t.Helper()
	s, err := cache.Open(cache.Options{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tg, err := s.Tag(cache.Repo{Registry: registry, Name: repo}, tag)
	if err != nil {
		t.Fatalf("%s/%s:%s: %v", registry, repo, tag, err)
	}
	return tg.Digest
}

func legacyFile(t *testing.T, tags ...string) (string, archivetest.LegacyImage) {
	im := archivetest.TwoLayerImage(t, tags...)
	return archivetest.WriteFile(t, "save.tar", archivetest.Tar(t, archivetest.LegacySave(im)...)), im
}

func TestImportCommandStoresTheImage(t *testing.T) {
	data := t.TempDir()
	file, _ := legacyFile(t, "app:v1")
	out := mustRun(t, "import", "--data", data, file)
	if !strings.Contains(out, "imported docker.io/library/app:v1 sha256:") {
		t.Errorf("output %q", out)
	}
	tagOf(t, data, "docker.io", "library/app", "v1")
}

func TestImportCommandFlagsAfterFilesAndRegistry(t *testing.T) {
	data := t.TempDir()
	file, _ := legacyFile(t)
	mustRun(t, "import", file, "--data", data, "--registry", "registry.lan:5000", "--tag", "team/app:7")
	tagOf(t, data, "registry.lan:5000", "team/app", "7")
}

func TestImportCommandErrors(t *testing.T) {
	idOnly, _ := legacyFile(t)
	evil := archivetest.WriteFile(t, "evil.tar", archivetest.Tar(t, archivetest.File("../evil", []byte("x"))))
	cases := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no file", []string{"import"}, 2, "name at least one FILE"},
		{"image id only", []string{"import", idOnly}, 1, "pass --tag"},
		{"unsafe", []string{"import", evil}, 1, "../evil"},
		{"missing file", []string{"import", "/nonexistent/x.tar"}, 1, "/nonexistent/x.tar"},
		{"tag with two files", []string{"import", "--tag", "a:1", idOnly, evil}, 2, "--tag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, append(c.args, "--data", t.TempDir())...)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			if !strings.HasPrefix(stderr, "pullcache: ") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr is not one pullcache: line: %q", stderr)
			}
			if !strings.Contains(stderr, c.says) {
				t.Errorf("stderr %q does not mention %q", stderr, c.says)
			}
		})
	}
}

// newTestUpstream is an in-process registry holding docker.io/library/app:v1
// and a two-platform docker.io/library/multi:v1.
func newTestUpstream(t *testing.T) (*httptest.Server, map[string]v1.Hash) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag(host + "/library/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	idx := archivetest.TwoPlatformIndex(t)
	iref, _ := name.NewTag(host + "/library/multi:v1")
	if err := remote.WriteIndex(iref, idx); err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := idx.Digest()
	return srv, map[string]v1.Hash{"app:v1": d1, "multi:v1": d2}
}

func TestWarmExportImportRoundTrip(t *testing.T) {
	up, digests := newTestUpstream(t)
	connected, airgapped := t.TempDir(), t.TempDir()
	out := mustRun(t, "warm", "--data", connected, "--upstream", "docker.io="+up.URL, "app:v1", "multi:v1")
	if !strings.Contains(out, "warmed 2 of 2 images") {
		t.Errorf("warm output %q", out)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	mustRun(t, "export", "--data", connected, "-o", bundle, "--all")
	mustRun(t, "import", "--data", airgapped, bundle)
	for tag, want := range digests {
		repo, tg, _ := strings.Cut(tag, ":")
		if got := tagOf(t, airgapped, "docker.io", "library/"+repo, tg); got != want {
			t.Errorf("%s → %s, want %s", tag, got, want)
		}
	}
}

func TestWarmOnePlatformExportsThatPlatform(t *testing.T) {
	up, _ := newTestUpstream(t)
	data := t.TempDir()
	mustRun(t, "warm", "--data", data, "--upstream", "docker.io="+up.URL, "--platform", "linux/arm64", "multi:v1")
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	code, _, stderr := runCmd(t, "export", "--data", data, "-o", bundle, "multi:v1")
	if code != 1 || !strings.Contains(stderr, "linux/amd64") {
		t.Errorf("export of all platforms: exit %d, %q; want a refusal naming linux/amd64", code, stderr)
	}
	if _, err := os.Stat(bundle); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed export left %s", bundle)
	}
	mustRun(t, "export", "--data", data, "-o", bundle, "--platform", "linux/arm64", "multi:v1")
}

func TestWarmReportsFailedImages(t *testing.T) {
	up, _ := newTestUpstream(t)
	code, stdout, stderr := runCmd(t, "warm", "--data", t.TempDir(), "--upstream", "docker.io="+up.URL, "app:v1", "nothere:1")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr, "nothere:1") {
		t.Errorf("stderr %q does not name the failed image", stderr)
	}
	if !strings.Contains(stdout, "failed nothere:1") {
		t.Errorf("stdout %q has no failure line", stdout)
	}
}

func TestWarmReadsAList(t *testing.T) {
	up, _ := newTestUpstream(t)
	list := archivetest.WriteFile(t, "list", []byte("# images\napp:v1\n\n multi:v1  # two platforms\n"))
	out := mustRun(t, "warm", "--data", t.TempDir(), "--upstream", "docker.io="+up.URL, "-f", list)
	if !strings.Contains(out, "warmed 2 of 2 images") {
		t.Errorf("output %q", out)
	}
}

func TestProgressBarsOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	v := newProgressView(&buf, true, []string{"a:1", "b:1"})
	v.update(admin.Progress{Image: "a:1", Done: 10, Total: 20, Finished: true})
	v.update(admin.Progress{Image: "b:1", Finished: true, Err: errors.New("boom")})
	out := buf.String()
	if !strings.Contains(out, "\x1b[2A") {
		t.Errorf("second redraw does not move the cursor up: %q", out)
	}
	if !strings.Contains(out, "failed: boom") {
		t.Errorf("no failure shown: %q", out)
	}
}

// serveInProcess wires a server as serve does — store, mirror on a loopback
// port, admin socket — and stops it at the end of the test.
func serveInProcess(t *testing.T, data, upstreamURL string, mod ...func(*config.Config)) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = data
	if err := cfg.SetUpstream("docker.io=" + upstreamURL); err != nil {
		t.Fatal(err)
	}
	for _, m := range mod {
		m(&cfg)
	}
	log := slog.New(slog.DiscardHandler)
	store, err := openStore(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	logins, err := newLogins(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newProxy(cfg, store, log, prometheus.NewRegistry(), nil, logins)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-done })
	stop, err := startAdmin(cfg, store, mirrorURL(ln.Addr(), false), srv, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(context.Background()) })
}

func TestCommandsTalkToTheRunningServer(t *testing.T) {
	up, digests := newTestUpstream(t)
	data := t.TempDir()
	serveInProcess(t, data, up.URL)
	// The server holds the store: these only work through its socket.
	file, _ := legacyFile(t, "saved:1")
	mustRun(t, "import", "--data", data, file)
	out := mustRun(t, "warm", "--data", data, "app:v1")
	if !strings.Contains(out, "warmed 1 of 1 images") {
		t.Errorf("warm output %q", out)
	}
	dir, ociDigests := archivetest.OCILayoutDir(t, "docker.io/library/layout:1", "")
	mustRun(t, "import", "--data", data, dir)
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	out = mustRun(t, "export", "--data", data, "-o", bundle, "app:v1", "saved:1", "layout:1")
	if !strings.Contains(out, "wrote "+bundle+": 3 images") {
		t.Errorf("export output %q", out)
	}
	fresh := t.TempDir()
	mustRun(t, "import", "--data", fresh, bundle)
	if got := tagOf(t, fresh, "docker.io", "library/app", "v1"); got != digests["app:v1"] {
		t.Errorf("app:v1 → %s, want %s", got, digests["app:v1"])
	}
	if got := tagOf(t, fresh, "docker.io", "library/layout", "1"); got != ociDigests[0] {
		t.Errorf("layout:1 → %s, want %s", got, ociDigests[0])
	}
}

func TestSecondServerOnTheSameDataIsRefused(t *testing.T) {
	data := t.TempDir()
	serveInProcess(t, data, "http://127.0.0.1:1")
	cfg := config.Default()
	cfg.Data = data
	if _, err := startAdmin(cfg, nil, "", nil, nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "another pullcache") {
		t.Errorf("err = %v, want another pullcache is serving", err)
	}
}
