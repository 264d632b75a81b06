package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The Docker tests run a Docker daemon of their own beside the machine's:
// its own data root, exec root (and so its own containerd), pid file and
// unix socket, no default bridge and no iptables rules. It is configured
// with a daemon.json as an operator's /etc/docker/daemon.json would be, and
// it reaches "the internet" only through a proxy the test owns, which
// refuses every connection and records it: a fallback to Docker Hub is seen
// there, fails at once, and never leaves the machine.

const (
	// dockerdReadyTimeout bounds how long dockerd may take to answer /_ping.
	dockerdReadyTimeout = time.Minute
	// dockerdStopTimeout bounds how long dockerd may take to exit on SIGTERM
	// (it stops its own containerd first).
	dockerdStopTimeout = time.Minute
)

// dockerdOptions are a test daemon's daemon.json settings.
type dockerdOptions struct {
	// Mirrors is registry-mirrors: where Docker Hub pulls go first.
	Mirrors []string
	// Insecure is insecure-registries (127.0.0.0/8 always is).
	Insecure []string
	// CAFile, when set, is a PEM bundle the daemon trusts for TLS
	// registries, besides the system directory's certificates. The
	// daemon's certs.d directory is the machine's /etc/docker/certs.d, so
	// the test daemon gets the bundle as SSL_CERT_FILE, which Go's system
	// pool reads. (Loopback registries are insecure to the daemon, which
	// then does not check certificates: a TLS test needs a bridge address.)
	CAFile string
	// MaxDownloadAttempts is max-download-attempts; 0 keeps the daemon's
	// default (5).
	MaxDownloadAttempts int
}

// daemonJSON renders o as daemon.json.
func (o dockerdOptions) daemonJSON() []byte {
	m := map[string]any{}
	if len(o.Mirrors) > 0 {
		m["registry-mirrors"] = o.Mirrors
	}
	if len(o.Insecure) > 0 {
		m["insecure-registries"] = o.Insecure
	}
	if o.MaxDownloadAttempts > 0 {
		m["max-download-attempts"] = o.MaxDownloadAttempts
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // strings and ints only
	}
	return b
}

// dockerDaemon is a running test-owned dockerd.
type dockerDaemon struct {
	t      *testing.T
	dir    string // everything of the daemon's lives here
	sock   string
	config string // the daemon.json path
	cli    string // DOCKER_CONFIG of the docker commands run against it
	cmd    *exec.Cmd
	logs   *syncBuffer
	hub    *refusingProxy
	done   chan struct{}
	err    error // cmd.Wait's result, set before done is closed

	mu       sync.Mutex
	networks []string // networks created with network(), removed at cleanup
}

// requireDocker skips t when this machine cannot run a Docker daemon of the
// test's own, saying why; with the end-to-end tests disabled it skips as
// requireE2E does. A daemon that is installed but fails to start is a
// failure, not a skip.
func requireDocker(t *testing.T) {
	t.Helper()
	requireE2E(t)
	for _, bin := range []string{"dockerd", "docker", "containerd", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("no Docker Engine on this machine (%s not found): the Docker daemon tests are skipped", bin)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("the Docker daemon tests start a dockerd of their own, which needs root: skipped")
	}
}

// startDockerd starts a Docker daemon configured by opts and waits until it
// answers. When t ends, whatever is left in it (containers, volumes,
// networks, images) is removed by ID, the daemon is stopped and its
// directory (mounts included) removed.
func startDockerd(ctx context.Context, t *testing.T, opts dockerdOptions) *dockerDaemon {
	t.Helper()
	requireDocker(t)
	dir := shortTempDir(t) // unix socket paths are limited to ~108 bytes
	d := &dockerDaemon{
		t:      t,
		dir:    dir,
		sock:   filepath.Join(dir, "d.sock"),
		config: filepath.Join(dir, "daemon.json"),
		cli:    filepath.Join(dir, "cli"),
		logs:   &syncBuffer{},
		hub:    newRefusingProxy(t),
		done:   make(chan struct{}),
	}
	writeFile(t, d.config, string(opts.daemonJSON()))
	args := []string{
		"--config-file", d.config, // never the machine's /etc/docker/daemon.json
		"--data-root", filepath.Join(dir, "root"),
		"--exec-root", filepath.Join(dir, "run"), // and so a containerd of its own
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--host", "unix://" + d.sock,
		"--bridge", "none", "--iptables=false", "--ip6tables=false",
		"--ip-forward=false", "--ip-masq=false",
	}
	d.cmd = exec.Command("dockerd", args...)
	d.cmd.Env = d.env(opts)
	d.cmd.Stdout = d.logs
	d.cmd.Stderr = d.logs
	t.Logf("$ dockerd %s\n%s", strings.Join(args, " "), opts.daemonJSON())
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(d.cleanup)
	d.waitReady(ctx)
	info := d.docker(ctx, t, "info", "--format", "{{.ServerVersion}} storage={{.Driver}} mirrors={{json .RegistryConfig.Mirrors}}")
	t.Logf("test dockerd ready: %s", strings.TrimSpace(info))
	return d
}

// env is dockerd's environment: this process's without proxy and CA
// settings, then the refusing proxy for everything but private addresses,
// the CA bundle, and a TMPDIR in the daemon's directory (its containerd
// writes a stack dump there when dockerd asks for one while stopping it).
func (d *dockerDaemon) env(opts dockerdOptions) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "TMPDIR":
			continue
		}
		env = append(env, kv)
	}
	tmp := filepath.Join(d.dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		d.t.Fatalf("dockerd's TMPDIR: %v", err)
	}
	env = append(env, "TMPDIR="+tmp)
	// Registries the tests run are on loopback or on a bridge the test made
	// (private addresses): reached directly. Names, Docker Hub's included,
	// go to the proxy.
	env = append(env, "HTTP_PROXY="+d.hub.url(), "HTTPS_PROXY="+d.hub.url(),
		"NO_PROXY=localhost,127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16")
	if opts.CAFile != "" {
		env = append(env, "SSL_CERT_FILE="+opts.CAFile)
	}
	return env
}

// waitReady polls the daemon's /_ping on its socket until it answers,
// dockerd exits or dockerdReadyTimeout passes.
func (d *dockerDaemon) waitReady(ctx context.Context) {
	t := d.t
	t.Helper()
	client := d.apiClient()
	defer client.CloseIdleConnections()
	deadline := time.NewTimer(dockerdReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = d.ping(ctx, client); lastErr == nil {
			return
		}
		select {
		case <-d.done:
			t.Fatalf("dockerd exited before it was ready: %v\n%s", d.err, d.logs.String())
		case <-deadline.C:
			t.Fatalf("dockerd did not answer /_ping within %s: %v\n%s", dockerdReadyTimeout, lastErr, d.logs.String())
		case <-tick.C:
		}
	}
}

// apiClient is an HTTP client for the daemon's API socket.
func (d *dockerDaemon) apiClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", d.sock)
		}},
	}
}

func (d *dockerDaemon) ping(ctx context.Context, client *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://dockerd/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/_ping: %s", resp.Status)
	}
	return nil
}

// cliEnv is the environment of docker commands run against the daemon: its
// socket, and a client configuration of its own (docker login writes there,
// never to the machine's ~/.docker).
func (d *dockerDaemon) cliEnv() []string {
	return []string{"DOCKER_HOST=unix://" + d.sock, "DOCKER_CONFIG=" + d.cli, "DOCKER_CONTEXT="}
}

// docker runs a docker command against the daemon and returns its standard
// output; it fails t when the command fails.
func (d *dockerDaemon) docker(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	return run(ctx, t, d.cliEnv(), "docker", args...)
}

// dockerErr runs a docker command against the daemon and returns its
// standard output, its combined output and its error.
func (d *dockerDaemon) dockerErr(ctx context.Context, t *testing.T, args ...string) (stdout, combined string, err error) {
	t.Helper()
	return runErr(ctx, t, d.cliEnv(), "docker", args...)
}

// reload rewrites daemon.json from opts and sends SIGHUP, as an operator
// changing registry-mirrors does, then waits until the daemon reports the
// new mirrors. (The CA bundle is read at start only.)
func (d *dockerDaemon) reload(ctx context.Context, t *testing.T, opts dockerdOptions) {
	t.Helper()
	writeFile(t, d.config, string(opts.daemonJSON()))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP to dockerd: %v", err)
	}
	want := make([]string, len(opts.Mirrors))
	for i, m := range opts.Mirrors {
		want[i] = strings.TrimSuffix(m, "/") + "/" // the daemon normalises to a trailing slash
	}
	deadline := time.NewTimer(dockerdReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var got []string
	for {
		out := d.docker(ctx, t, "info", "--format", "{{json .RegistryConfig.Mirrors}}")
		got = nil
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("docker info: mirrors %q: %v", out, err)
		}
		if slices.Equal(got, want) || (len(got) == 0 && len(want) == 0) {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("after SIGHUP the daemon's mirrors are %q, want %q within %s\n%s", got, want, dockerdReadyTimeout, d.logs.String())
		case <-tick.C:
		}
	}
}

// hubAttempts are the hosts the daemon tried to reach beyond loopback
// (CONNECT host:port, or the host of a proxied plain-HTTP request): a
// registry-mirrors fallback shows here as registry-1.docker.io:443.
func (d *dockerDaemon) hubAttempts() []string { return d.hub.attempts() }

// run starts a detached container with docker run -d args... and returns
// its ID; it is removed (by ID) when t ends.
func (d *dockerDaemon) runDetached(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	id := strings.TrimSpace(d.docker(ctx, t, append([]string{"run", "-d"}, args...)...))
	t.Cleanup(func() { d.remove(t, "container", "rm", "-f", "-v", id) })
	return id
}

// volume creates a named volume and returns its name; it is removed when t
// ends.
func (d *dockerDaemon) volume(ctx context.Context, t *testing.T) string {
	t.Helper()
	name := strings.TrimSpace(d.docker(ctx, t, "volume", "create"))
	t.Cleanup(func() { d.remove(t, "volume", "volume", "rm", "-f", name) })
	return name
}

// network creates a bridge network and returns its ID and its gateway
// address (the host's side of the bridge). The bridge is an interface of
// the host: it is removed when t ends, and the daemon's cleanup removes it
// again should that fail.
func (d *dockerDaemon) network(ctx context.Context, t *testing.T) (id, gateway string) {
	t.Helper()
	id = strings.TrimSpace(d.docker(ctx, t, "network", "create", "--driver", "bridge",
		"--opt", "com.docker.network.bridge.enable_ip_masquerade=false", "pullcache-e2e-"+filepath.Base(d.dir)))
	d.mu.Lock()
	d.networks = append(d.networks, id)
	d.mu.Unlock()
	t.Cleanup(func() { d.remove(t, "network", "network", "rm", id) })
	gateway = strings.TrimSpace(d.docker(ctx, t, "network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", id))
	if net.ParseIP(gateway) == nil {
		t.Fatalf("network %s: gateway %q is not an address", id, gateway)
	}
	return id, gateway
}

// remove runs a docker removal command during cleanup; a failure is an
// error of t (the thing is left behind) unless it is already gone.
func (d *dockerDaemon) remove(t *testing.T, what string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if _, combined, err := d.dockerErr(ctx, t, args...); err != nil && !strings.Contains(strings.ToLower(combined), "no such") {
		t.Errorf("removing %s: %v\n%s", what, err, combined)
	}
}

// imageID is the full ID (config digest) of a local image.
func (d *dockerDaemon) imageID(ctx context.Context, t *testing.T, ref string) string {
	t.Helper()
	return strings.TrimSpace(d.docker(ctx, t, "image", "inspect", "--format", "{{.Id}}", ref))
}

// imageIDs are the IDs of every image of the daemon, intermediate ones
// included, newest first.
func (d *dockerDaemon) imageIDs(ctx context.Context, t *testing.T) []string {
	t.Helper()
	return dedupe(strings.Fields(d.docker(ctx, t, "images", "--all", "--quiet", "--no-trunc")))
}

// removeAllImages removes every image of the daemon, by ID.
func (d *dockerDaemon) removeAllImages(ctx context.Context, t *testing.T) {
	t.Helper()
	ids := d.imageIDs(ctx, t)
	if len(ids) == 0 {
		return
	}
	d.docker(ctx, t, append([]string{"rmi", "--force"}, ids...)...)
	if left := strings.TrimSpace(d.docker(ctx, t, "images", "--all", "--quiet")); left != "" {
		t.Fatalf("images left after docker rmi: %s", left)
	}
}

// cleanup removes what is left in the daemon, by ID, stops it and removes
// its directory.
func (d *dockerDaemon) cleanup() {
	t := d.t
	select {
	case <-d.done:
		t.Errorf("dockerd exited on its own: %v", d.err)
	default:
		d.sweep(t)
		d.stop(t)
	}
	d.removeBridges(t)
	unmountUnder(t, d.dir)
	if t.Failed() {
		t.Logf("test dockerd log:\n%s", d.logs.String())
	}
}

// sweep removes every container, volume, network and image still in the
// daemon, each by ID. Tests remove what they create themselves; this is
// for a test that failed half-way.
func (d *dockerDaemon) sweep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*cmdTimeout)
	defer cancel()
	list := func(args ...string) []string {
		out, combined, err := d.dockerErr(ctx, t, args...)
		if err != nil {
			t.Errorf("listing what is left in the test daemon: %v\n%s", err, combined)
			return nil
		}
		return dedupe(strings.Fields(out))
	}
	for _, kind := range []struct {
		ls, rm []string
	}{
		{[]string{"ps", "--all", "--quiet", "--no-trunc"}, []string{"rm", "--force", "--volumes"}},
		{[]string{"volume", "ls", "--quiet"}, []string{"volume", "rm", "--force"}},
		{[]string{"network", "ls", "--quiet", "--no-trunc", "--filter", "type=custom"}, []string{"network", "rm"}},
		{[]string{"images", "--all", "--quiet", "--no-trunc"}, []string{"rmi", "--force"}},
	} {
		if ids := list(kind.ls...); len(ids) > 0 {
			d.remove(t, strings.Join(kind.ls[:1], " "), append(kind.rm, ids...)...)
		}
	}
}

// stop sends SIGTERM and waits; if dockerd lingers it is killed, and so is
// the containerd it started (whose pid file is in its exec root).
func (d *dockerDaemon) stop(t *testing.T) {
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("signalling dockerd: %v", err)
	}
	timer := time.NewTimer(dockerdStopTimeout)
	defer timer.Stop()
	select {
	case <-d.done:
		return
	case <-timer.C:
	}
	t.Errorf("dockerd did not exit within %s of SIGTERM; killing it and its containerd", dockerdStopTimeout)
	_ = d.cmd.Process.Kill()
	<-d.done
	pidFile := filepath.Join(d.dir, "run", "containerd", "containerd.pid")
	if b, err := os.ReadFile(pidFile); err == nil {
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeBridges deletes the host interface of any network the daemon's
// removal missed (Docker names it br-<first 12 hex digits of the ID>).
func (d *dockerDaemon) removeBridges(t *testing.T) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range d.networks {
		name := "br-" + id[:min(12, len(id))]
		if _, err := os.Stat(filepath.Join("/sys/class/net", name)); err != nil {
			continue
		}
		t.Errorf("bridge %s outlived its network; deleting it", name)
		if out, err := exec.Command("ip", "link", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip link delete %s: %v\n%s", name, err, out)
		}
	}
}

// unmountUnder unmounts whatever is still mounted below dir (dockerd can
// leave its netns bind mount behind), deepest first, so dir can be removed.
func unmountUnder(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("reading mounts: %v", err)
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Field 5 is the mount point, with spaces and such octal-escaped.
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("unmounting %s: %v", p, err)
		} else {
			t.Logf("unmounted %s, left by dockerd", p)
		}
	}
}

// refusingProxy is the test daemon's HTTP(S) proxy: the only way out, it
// records where the daemon tried to go and refuses every request.
type refusingProxy struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string
}

func newRefusingProxy(t *testing.T) *refusingProxy {
	t.Helper()
	p := &refusingProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host // CONNECT host:port; the URL's host for plain HTTP
		p.mu.Lock()
		p.got = append(p.got, host)
		p.mu.Unlock()
		http.Error(w, "the test daemon has no internet", http.StatusForbidden)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *refusingProxy) url() string { return p.srv.URL }

func (p *refusingProxy) attempts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

// dedupe returns ss without repeats, in first-seen order.
func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
