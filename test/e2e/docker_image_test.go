package e2e

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// healthyTimeout bounds how long the mirror's container may take to report
// healthy.
const healthyTimeout = time.Minute

// buildTimeout bounds the image build (compiling pullcache from nothing).
const buildTimeout = 10 * time.Minute

// TestContainerImage builds the project's image from its Dockerfile, with
// the same `docker build` users run plus build arguments naming local
// bases (the engine can pull none): a Go toolchain image made from this
// machine's Go installation, and a scratch-based image holding what
// distroless/static gives (CA certificates, a nonroot user, /tmp). Go
// modules come from this machine's module cache, served on loopback as a
// module proxy. Then it runs the image as users do (-p, a volume for
// /data), waits for its HEALTHCHECK, pulls through it from the host with
// crane (by the published port) and with the daemon (registry-mirrors at
// the container's address), stops it, starts a new container on the same
// volume with the upstream gone, and pulls again, warm.
func TestContainerImage(t *testing.T) {
	ctx := context.Background()
	requireDocker(t)
	requireTools(t, "crane")
	d := startDockerd(ctx, t, dockerdOptions{})
	image := buildProjectImage(ctx, t, d)
	checkImageConfig(ctx, t, d, image)
	if out := strings.TrimSpace(d.docker(ctx, t, "run", "--rm", "--network", "none", image, "version")); out != "pullcache e2e" {
		t.Errorf("pullcache version in the image printed %q, want %q (the VERSION build argument)", out, "pullcache e2e")
	}

	imgs := loadDockerImages(t)
	fx := loadFixtures(t)
	hub := newUpstream(t)
	pushRunnable(t, hub, imgs.v1)
	hub.push(t, fx.images[2]) // library/multi:v1, amd64 and arm64
	network, gateway := d.network(ctx, t)
	// The container reaches the host's upstream through the bridge: a
	// forwarder on the gateway address, which only this host has.
	fwd := newForwarder(t, gateway, hub.url(), nil)
	volume := d.volume(ctx, t)
	run := func() (id, addr string) {
		id = d.runDetached(ctx, t, "--network", network, "-p", "127.0.0.1::5000", "-v", volume+":/data",
			"-e", "PULLCACHE_UPSTREAM=docker.io="+fwd.url(),
			"--health-interval", "1s", // the image says 30s; the test does not wait that long
			image)
		waitHealthy(ctx, t, d, id)
		return id, publishedAddr(ctx, t, d, id)
	}

	first, addr := run()
	if uid := containerUID(ctx, t, d, first); uid != "65532" {
		t.Errorf("the mirror runs as uid %s, want 65532 (nonroot)", uid)
	}
	cases := append([]pullCase{}, fx.cases[2:]...) // the multi-platform index, per platform
	var cold []pulled
	for _, tc := range cases {
		got := craneClient{}.Pull(ctx, t, addr, tc.image.ref(), tc.platform)
		checkPulled(t, tc, got)
		cold = append(cold, got)
	}
	// The daemon as the mirror's client, by registry-mirrors: the
	// container's own address is a plain-HTTP mirror beyond loopback, as
	// http://mirror.lan:5000 in the README is.
	d.reload(ctx, t, dockerdOptions{Mirrors: []string{containerMirror(ctx, t, d, first)}})
	d.pullAndRun(ctx, t, "dockerhello:v1", imgs.v1)
	hub.requireEachBlobFetchedAtMostOnce(t)
	requireFetchedOnce(t, hub, blobsOf(t, imgs.v1.image))
	checkVolumeOwner(ctx, t, d, volume)

	d.docker(ctx, t, "stop", "--time", "30", first)
	if code := strings.TrimSpace(d.docker(ctx, t, "inspect", "--format", "{{.State.ExitCode}}", first)); code != "0" {
		t.Errorf("the mirror exited %s on docker stop, want 0 (a clean shutdown on SIGTERM)\n%s", code, d.containerLogs(ctx, t, first))
	}
	d.docker(ctx, t, "rm", first)
	fwd.stop()
	hub.stop()

	second, addr := run()
	for i, tc := range cases {
		got := craneClient{}.Pull(ctx, t, addr, tc.image.ref(), tc.platform)
		checkPulled(t, tc, got)
		if got != cold[i] {
			t.Errorf("%s: warm pull %+v, cold pull %+v", tc, got, cold[i])
		}
	}
	d.reload(ctx, t, dockerdOptions{Mirrors: []string{containerMirror(ctx, t, d, second)}})
	d.docker(ctx, t, "rmi", "dockerhello:v1") // so the daemon fetches every layer again
	d.pullAndRun(ctx, t, "dockerhello:v1", imgs.v1)
	if logs := d.containerLogs(ctx, t, second); !strings.Contains(logs, "cache=hit") {
		t.Errorf("the second container's log shows no cache hit:\n%s", logs)
	}
	if d.hubAttempts() != nil {
		t.Errorf("the daemon went past the mirror: %v", d.hubAttempts())
	}
}

// containerMirror is the registry-mirrors URL of the mirror's container at
// its address on the bridge.
func containerMirror(ctx context.Context, t *testing.T, d *dockerDaemon, id string) string {
	t.Helper()
	ip := strings.TrimSpace(d.docker(ctx, t, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id))
	if net.ParseIP(ip) == nil {
		t.Fatalf("container %s: address %q", id, ip)
	}
	return "http://" + net.JoinHostPort(ip, "5000")
}

// buildProjectImage builds the module's Dockerfile in d and returns the
// image's ID; it is removed when t ends.
func buildProjectImage(ctx context.Context, t *testing.T, d *dockerDaemon) string {
	t.Helper()
	goImage := importImage(ctx, t, d, "pullcache-e2e/go:local", goToolchainTar(t),
		"ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV GOPATH=/go", "ENV GOTOOLCHAIN=local", "ENV HOME=/root")
	runtimeImage := importImage(ctx, t, d, "pullcache-e2e/static:local", staticBaseTar(t))
	proxy := newModuleProxy(t)
	tag := "pullcache-e2e:" + filepath.Base(d.dir)
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	// The classic builder, whatever the client's default: it takes
	// --network host (the module proxy is on this host's loopback) with no
	// entitlements, and it ignores nothing the Dockerfile says.
	cmd := exec.CommandContext(ctx, "docker", "build",
		"--network", "host",
		"--build-arg", "GO_IMAGE="+goImage,
		"--build-arg", "RUNTIME_IMAGE="+runtimeImage,
		"--build-arg", "GOPROXY="+proxy.url(),
		"--build-arg", "VERSION=e2e",
		"--tag", tag,
		moduleRoot(t))
	cmd.Env = append(append(os.Environ(), d.cliEnv()...), "DOCKER_BUILDKIT=0")
	before := d.imageIDs(ctx, t)
	// The build keeps its stages' intermediate images: all of them go, by
	// ID, newest (children) first, however the build ends.
	t.Cleanup(func() {
		var created []string
		for _, id := range d.imageIDs(context.Background(), t) {
			if !slices.Contains(before, id) {
				created = append(created, id)
			}
		}
		if len(created) > 0 {
			d.remove(t, "the build's images", append([]string{"rmi", "--force"}, created...)...)
		}
	})
	t.Logf("$ %s", strings.Join(cmd.Args, " "))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker build: %v\n%s\nmodule proxy misses: %v (./scripts/install-test-deps.sh fills the module cache with go mod download)",
			err, out, proxy.misses())
	}
	t.Logf("  (docker build ok in %s)", time.Since(start).Round(time.Second))
	return d.imageID(ctx, t, tag)
}

// checkImageConfig checks what the Dockerfile promises: the non-root user,
// the HEALTHCHECK, the port, the volume and the command.
func checkImageConfig(ctx context.Context, t *testing.T, d *dockerDaemon, image string) {
	t.Helper()
	var cfg struct {
		User         string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		Entrypoint   []string
		Cmd          []string
		Healthcheck  struct{ Test []string }
	}
	raw := d.docker(ctx, t, "image", "inspect", "--format", "{{json .Config}}", image)
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("image config %q: %v", raw, err)
	}
	if cfg.User != "nonroot:nonroot" {
		t.Errorf("image user %q, want nonroot:nonroot", cfg.User)
	}
	if _, ok := cfg.ExposedPorts["5000/tcp"]; !ok {
		t.Errorf("image exposes %v, want 5000/tcp", cfg.ExposedPorts)
	}
	if _, ok := cfg.Volumes["/data"]; !ok {
		t.Errorf("image volumes %v, want /data", cfg.Volumes)
	}
	if got := strings.Join(append(cfg.Entrypoint, cfg.Cmd...), " "); got != "/pullcache serve" {
		t.Errorf("image runs %q, want /pullcache serve", got)
	}
	if got := strings.Join(cfg.Healthcheck.Test, " "); got != "CMD /pullcache health" {
		t.Errorf("image HEALTHCHECK %q, want CMD /pullcache health", got)
	}
	size := strings.TrimSpace(d.docker(ctx, t, "image", "inspect", "--format", "{{.Size}}", image))
	t.Logf("image %s: %s bytes", image, size)
}

// importImage turns a root filesystem tar into an image named ref with
// docker import (and the Dockerfile changes given) and returns ref; it is
// removed when t ends.
func importImage(ctx context.Context, t *testing.T, d *dockerDaemon, ref, rootfs string, changes ...string) string {
	t.Helper()
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	id := strings.TrimSpace(d.docker(ctx, t, append(args, rootfs, ref)...))
	t.Cleanup(func() { d.remove(t, "image", "rmi", "--force", id) })
	return ref
}

// tarWriter writes a root filesystem tar file.
type tarWriter struct {
	t  *testing.T
	f  *os.File
	tw *tar.Writer
}

func newTarWriter(t *testing.T, name string) *tarWriter {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return &tarWriter{t: t, f: f, tw: tar.NewWriter(f)}
}

func (w *tarWriter) dir(name string, mode int64, uid int) {
	w.t.Helper()
	if err := w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: time.Unix(1e9, 0)}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *tarWriter) file(name string, mode int64, data []byte) {
	w.t.Helper()
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(1e9, 0)}
	if err := w.tw.WriteHeader(hdr); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.tw.Write(data); err != nil {
		w.t.Fatal(err)
	}
}

// copyTree adds the tree at src as dst, with modes, links and times kept.
func (w *tarWriter) copyTree(src, dst string) {
	w.t.Helper()
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(filepath.Join(dst, rel))
		if e.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := w.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w.tw, f)
		return err
	})
	if err != nil {
		w.t.Fatalf("adding %s to the image: %v", src, err)
	}
}

// close finishes the tar and returns its path.
func (w *tarWriter) close() string {
	w.t.Helper()
	if err := w.tw.Close(); err != nil {
		w.t.Fatal(err)
	}
	if err := w.f.Close(); err != nil {
		w.t.Fatal(err)
	}
	return w.f.Name()
}

// goToolchainTar is a root filesystem holding this machine's Go
// installation at /usr/local/go, where the official golang images have
// theirs, and nothing else: no shell, which the Dockerfile does not need.
func goToolchainTar(t *testing.T) string {
	t.Helper()
	goroot := strings.TrimSpace(run(context.Background(), t, nil, "go", "env", "GOROOT"))
	w := newTarWriter(t, "go.tar")
	w.dir("tmp", 0o1777, 0)
	w.dir("root", 0o700, 0)
	w.dir("usr", 0o755, 0)
	w.dir("usr/local", 0o755, 0)
	w.copyTree(goroot, "usr/local/go")
	return w.close()
}

// staticBaseTar is a root filesystem with what the Dockerfile's default
// runtime base (distroless/static, nonroot) gives a static binary: CA
// certificates, a nonroot user and group (65532), its home, and /tmp.
func staticBaseTar(t *testing.T) string {
	t.Helper()
	w := newTarWriter(t, "static.tar")
	w.dir("etc", 0o755, 0)
	w.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"))
	w.file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n"))
	if ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		w.dir("etc/ssl", 0o755, 0)
		w.dir("etc/ssl/certs", 0o755, 0)
		w.file("etc/ssl/certs/ca-certificates.crt", 0o644, ca)
	} else {
		t.Logf("no CA bundle on this machine (%v): the test image has none (its upstream is plain HTTP)", err)
	}
	w.dir("home", 0o755, 0)
	w.dir("home/nonroot", 0o700, 65532)
	w.dir("tmp", 0o1777, 0)
	return w.close()
}

// moduleRoot is the module's root directory: the Dockerfile's build context.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Dockerfile")); err != nil {
		t.Fatalf("no Dockerfile at the module root: %v", err)
	}
	return root
}

// moduleProxy serves this machine's Go module cache (its download
// directory has the module proxy protocol's layout) on loopback, and
// remembers what it did not have.
type moduleProxy struct {
	srv    *httptest.Server
	mu     sync.Mutex
	missed []string
}

func newModuleProxy(t *testing.T) *moduleProxy {
	t.Helper()
	modcache := strings.TrimSpace(run(context.Background(), t, nil, "go", "env", "GOMODCACHE"))
	files := http.FileServer(http.Dir(filepath.Join(modcache, "cache", "download")))
	p := &moduleProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		files.ServeHTTP(rec, r)
		if rec.status == http.StatusNotFound {
			p.mu.Lock()
			p.missed = append(p.missed, r.URL.Path)
			p.mu.Unlock()
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *moduleProxy) url() string { return p.srv.URL }

func (p *moduleProxy) misses() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.missed...)
}

// forwarder is a reverse proxy to target listening on host (a bridge's
// gateway address): containers on the bridge reach a loopback server
// through it, and a daemon sees a registry beyond loopback, which it does
// not treat as insecure. With cert set it serves HTTPS.
type forwarder struct {
	srv  *httptest.Server
	once sync.Once
}

func newForwarder(t *testing.T, host, target string, cert *tls.Certificate) *forwarder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("listening on the bridge's gateway %s: %v", host, err)
	}
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(u))
	srv.Listener.Close()
	srv.Listener = ln
	if cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	f := &forwarder{srv: srv}
	t.Cleanup(f.stop)
	return f
}

func (f *forwarder) url() string { return f.srv.URL }

func (f *forwarder) stop() {
	f.once.Do(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
}

// waitHealthy polls the container's health until its HEALTHCHECK reports
// healthy; it fails t if the container stops or healthyTimeout passes.
func waitHealthy(ctx context.Context, t *testing.T, d *dockerDaemon, id string) {
	t.Helper()
	deadline := time.NewTimer(healthyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		state := strings.Fields(d.docker(ctx, t, "inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", id))
		if len(state) == 2 && state[1] == "healthy" {
			return
		}
		if len(state) > 0 && state[0] != "running" {
			t.Fatalf("the mirror's container is %v before it was healthy:\n%s", state, d.containerLogs(ctx, t, id))
		}
		select {
		case <-deadline.C:
			health := d.docker(ctx, t, "inspect", "--format", "{{json .State.Health}}", id)
			t.Fatalf("the mirror's container is not healthy after %s: %s\n%s", healthyTimeout, health, d.containerLogs(ctx, t, id))
		case <-tick.C:
		}
	}
}

// publishedAddr is the host address docker run -p gave the container's
// port 5000.
func publishedAddr(ctx context.Context, t *testing.T, d *dockerDaemon, id string) string {
	t.Helper()
	out := strings.TrimSpace(d.docker(ctx, t, "port", id, "5000/tcp"))
	addr := strings.Fields(out)
	if len(addr) == 0 {
		t.Fatalf("docker port: no address for 5000/tcp: %q", out)
	}
	return addr[0]
}

// containerUID is the uid the container's main process runs as, as the
// host sees it.
func containerUID(ctx context.Context, t *testing.T, d *dockerDaemon, id string) string {
	t.Helper()
	pid := strings.TrimSpace(d.docker(ctx, t, "inspect", "--format", "{{.State.Pid}}", id))
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+pid, &st); err != nil {
		t.Fatalf("stat /proc/%s: %v", pid, err)
	}
	return strconv.FormatUint(uint64(st.Uid), 10)
}

// checkVolumeOwner checks that the mirror wrote its data into the volume as
// the nonroot user: a fresh volume takes /data's owner from the image.
func checkVolumeOwner(ctx context.Context, t *testing.T, d *dockerDaemon, volume string) {
	t.Helper()
	mnt := strings.TrimSpace(d.docker(ctx, t, "volume", "inspect", "--format", "{{.Mountpoint}}", volume))
	entries, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatalf("reading the volume: %v", err)
	}
	if len(entries) == 0 {
		t.Fatalf("the volume %s is empty: the mirror did not keep its data there", mnt)
	}
	for _, p := range append([]string{mnt}, filepath.Join(mnt, entries[0].Name())) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 65532 {
			t.Errorf("%s is owned by uid %d, want 65532 (nonroot)", p, st.Uid)
		}
	}
}

// containerLogs is what the container wrote, stdout and stderr.
func (d *dockerDaemon) containerLogs(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	_, combined, err := d.dockerErr(ctx, t, "logs", id)
	if err != nil {
		t.Errorf("docker logs %s: %v", id, err)
	}
	return combined
}
