package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The repository every registry of these tests holds, each with an image of
// its own: the same name must never yield another registry's content.
const (
	sharedRepo = "org/app"
	sharedTag  = "v1"
	sharedRef  = sharedRepo + ":" + sharedTag
)

// front is how a fronted upstream is reached: what it demands of pullcache.
type front struct {
	// basic demands HTTP Basic credentials user:password.
	basic bool
	// bearer demands a token from the registry's token endpoint, which
	// demands user:password.
	bearer         bool
	user, password string
	// tls serves HTTPS with a certificate of a CA the test generates.
	tls bool
}

// frontedUpstream is an in-process registry served twice: through a front
// (auth, TLS) that pullcache is configured with and that counts requests like
// upstream does, and through a plain back door that the test pushes to, so
// pushes are neither authenticated nor counted.
type frontedUpstream struct {
	*upstream
	back  *httptest.Server
	caPEM []byte // the CA of a TLS front, PEM
}

// bearerToken is the token a bearer front's token endpoint hands out.
const bearerToken = "e2e-token"

func newFrontedUpstream(t *testing.T, f front) *frontedUpstream {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	fu := &frontedUpstream{upstream: &upstream{counts: map[string]int{}, blobGETs: map[string]int{}}}
	fu.back = httptest.NewServer(reg)
	t.Cleanup(fu.back.Close)

	srv := httptest.NewUnstartedServer(nil)
	scheme := "http"
	if f.tls {
		caPEM, cert := newRegistryTestCA(t, "127.0.0.1")
		fu.caPEM = caPEM
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		scheme = "https"
	}
	// The realm is known before the server starts, so handlers only read it.
	realm := scheme + "://" + srv.Listener.Addr().String() + "/token"
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fu.record(r)
		if f.authorized(w, r, realm) {
			reg.ServeHTTP(w, r)
		}
	})
	if f.tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	fu.srv = srv
	fu.host = srv.Listener.Addr().String()
	t.Cleanup(fu.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("upstream %s received:\n%s", fu.srv.URL, strings.Join(fu.requestLog(), "\n"))
		}
	})
	return fu
}

// authorized answers the token endpoint and challenges, and reports whether
// r may go on to the registry.
func (f front) authorized(w http.ResponseWriter, r *http.Request, realm string) bool {
	switch {
	case f.basic:
		if u, p, ok := r.BasicAuth(); ok && u == f.user && p == f.password {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
	case f.bearer && r.URL.Path == "/token":
		if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.password {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token":%q,"expires_in":3600}`, bearerToken)
		return false
	case f.bearer:
		if r.Header.Get("Authorization") == "Bearer "+bearerToken {
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="e2e"`, realm))
	default:
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	return false
}

// pushShared pushes img as org/app:v1 through the back door and returns the
// digests of its manifest and blobs.
func (fu *frontedUpstream) pushShared(t *testing.T, img v1.Image) (manifest string, blobs map[string]bool) {
	t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(fu.back.URL, "http://")+"/"+sharedRef, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	blobs = map[string]bool{digestOf(t, img.ConfigName): true}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		blobs[digestOf(t, l.Digest)] = true
	}
	return digestOf(t, img.Digest), blobs
}

// requireOnlyOwnBlobs fails t if the upstream was asked for a blob it was
// not pushed: pullcache asked it for another registry's content.
func (fu *frontedUpstream) requireOnlyOwnBlobs(t *testing.T, registry string, own map[string]bool) {
	t.Helper()
	for d := range fu.blobGETsByDigest() {
		if !own[d] {
			t.Errorf("%s upstream was asked for blob %s, which is not its image's", registry, d)
		}
	}
}

// newRegistryTestCA generates a CA and a server certificate for host (an IP
// address) signed by it; it returns the CA as PEM and the server's key pair.
func newRegistryTestCA(t *testing.T, host string) (caPEM []byte, cert tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pullcache e2e CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: host},
		IPAddresses:  []net.IP{net.ParseIP(host)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// registryConf is one entry of the config file's registries map.
type registryConf struct {
	Endpoints   []string `json:"endpoints"`
	Username    string   `json:"username,omitempty"`
	Password    string   `json:"password,omitempty"`
	PasswordEnv string   `json:"password_env,omitempty"`
	CAFile      string   `json:"ca_file,omitempty"`
}

// writeRegistriesConfig writes a pullcache config file (JSON, which is YAML) with
// registries and hosts, and returns its path.
func writeRegistriesConfig(t *testing.T, registries map[string]registryConf, hosts map[string]string) string {
	t.Helper()
	b, err := json.MarshalIndent(map[string]any{"registries": registries, "hosts": hosts}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, filepath.Join(t.TempDir(), "pullcache.yml"), string(b))
	t.Logf("config %s:\n%s", path, b)
	return path
}

// registryFixture is one registry of TestRegistriesStayApart.
type registryFixture struct {
	name  string
	front front
	up    *frontedUpstream
	want  string          // digest of its org/app:v1
	blobs map[string]bool // digests of its image's blobs
}

// TestRegistriesStayApart serves four upstreams from one pullcache, each
// holding a different image under the same name org/app:v1: docker.io
// anonymous, ghcr.io behind a bearer token service (password from the
// environment), quay.io behind Basic auth, tls.lan over HTTPS with a CA of
// the test's. containerd (ns=), podman (path-prefixed mirror locations),
// crane, skopeo and regctl (path-prefixed names) and a Host-mapped request
// must each get every registry's own image, and no upstream may be asked
// for another's content.
func TestRegistriesStayApart(t *testing.T) {
	requireE2E(t)
	const passwordEnv = "E2E_GHCR_PASSWORD"
	regs := []*registryFixture{
		{name: "docker.io"},
		{name: "ghcr.io", front: front{bearer: true, user: "ci", password: "ghcr-secret-7f3a"}},
		{name: "quay.io", front: front{basic: true, user: "robot", password: "quay-secret-91c2"}},
		{name: "tls.lan", front: front{tls: true}},
	}
	confs := map[string]registryConf{}
	byName := map[string]*registryFixture{}
	seen := map[string]string{}
	for _, r := range regs {
		img, err := schema2Image(2, 64<<10, hostPlatform)
		if err != nil {
			t.Fatal(err)
		}
		r.up = newFrontedUpstream(t, r.front)
		r.want, r.blobs = r.up.pushShared(t, img)
		if other, dup := seen[r.want]; dup {
			t.Fatalf("%s and %s hold the same image %s; the test needs distinct ones", other, r.name, r.want)
		}
		seen[r.want] = r.name
		byName[r.name] = r
		conf := registryConf{Endpoints: []string{r.up.url()}}
		switch {
		case r.front.bearer:
			t.Setenv(passwordEnv, r.front.password) // pullcache inherits it
			conf.Username, conf.PasswordEnv = r.front.user, passwordEnv
		case r.front.basic:
			conf.Username, conf.Password = r.front.user, r.front.password
		case r.front.tls:
			conf.CAFile = writeFile(t, filepath.Join(t.TempDir(), "ca.pem"), string(r.up.caPEM))
		}
		confs[r.name] = conf
		t.Logf("%s: %s holds %s at %s", r.name, r.up.url(), sharedRef, r.want)
	}
	cfg := writeRegistriesConfig(t, confs, map[string]string{"ghcr.mirror.lan": "ghcr.io"})
	srv := startPullcache(t, t.TempDir(), nil, "--config", cfg)
	ctx := context.Background()

	t.Run("containerd", func(t *testing.T) {
		requireTools(t, containerdClient{}.Tools()...)
		d := startContainerd(ctx, t)
		hostsDir := filepath.Join(d.dir, "certs.d")
		for _, r := range regs {
			writeFile(t, filepath.Join(hostsDir, r.name, "hosts.toml"), fmt.Sprintf(`server = "https://%s"
[host."http://%s"]
  capabilities = ["pull", "resolve"]
`, r.name, srv.addr))
		}
		for _, r := range regs {
			ref := r.name + "/" + sharedRef
			d.ctr(ctx, t, "images", "pull", "--hosts-dir", hostsDir, ref)
			if _, got := d.imageTarget(ctx, t, ref); got != r.want {
				t.Errorf("ctr pulled %s as %s, want %s (%s's own)", ref, got, r.want, r.name)
			}
		}
	})

	t.Run("podman", func(t *testing.T) {
		requireTools(t, podmanClient{}.Tools()...)
		names := make([]string, len(regs))
		for i, r := range regs {
			names[i] = r.name
		}
		p := newPodmanWithPrefixedMirrors(t, srv.addr, names)
		for _, r := range regs {
			ref := r.name + "/" + sharedRef
			if got := p.pull(ctx, t, ref); got.Manifest != r.want {
				t.Errorf("podman pulled %s as %s, want %s (%s's own)", ref, got.Manifest, r.want, r.name)
			}
		}
	})

	for _, c := range []client{craneClient{}, skopeoClient{}, regctlClient{}} {
		t.Run(c.Name(), func(t *testing.T) {
			requireTools(t, c.Tools()...)
			images := []struct{ image, registry string }{
				{sharedRef, "docker.io"}, // no prefix: the default registry
			}
			for _, r := range regs {
				images = append(images, struct{ image, registry string }{r.name + "/" + sharedRef, r.name})
			}
			for _, im := range images {
				want := byName[im.registry].want
				got := c.Pull(ctx, t, srv.addr, im.image, "")
				if got.Manifest != want {
					t.Errorf("%s/%s: pulled manifest %s, want %s (%s's own)", srv.addr, im.image, got.Manifest, want, im.registry)
				}
				if got.Tag != "" && got.Tag != want {
					t.Errorf("%s/%s: tag resolved to %s, want %s (%s's own)", srv.addr, im.image, got.Tag, want, im.registry)
				}
			}
		})
	}

	t.Run("host-header", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodHead, "http://"+srv.addr+"/v2/"+sharedRepo+"/manifests/"+sharedTag, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "ghcr.mirror.lan:5000"
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HEAD with Host %s: %s", req.Host, resp.Status)
		}
		if got, want := resp.Header.Get("Docker-Content-Digest"), byName["ghcr.io"].want; got != want {
			t.Errorf("HEAD with Host %s: Docker-Content-Digest %s, want %s (ghcr.io's)", req.Host, got, want)
		}
	})

	for _, r := range regs {
		r.up.requireOnlyOwnBlobs(t, r.name, r.blobs)
		if r.up.count(http.MethodGet, kindManifest) == 0 {
			t.Errorf("%s upstream received no manifest GET: the pulls did not reach it", r.name)
		}
	}
	logs := srv.logs.String()
	for _, r := range regs {
		if r.front.password != "" && strings.Contains(logs, r.front.password) {
			t.Errorf("pullcache's log contains the %s password", r.name)
		}
	}
}

// podmanStore is a throwaway podman store whose registries.conf mirrors each
// of a list of registries at mirror/<registry>, the way podman users point
// one mirror at many registries.
type podmanStore struct {
	env, global []string
	policy      string
}

func newPodmanWithPrefixedMirrors(t *testing.T, mirror string, registries []string) *podmanStore {
	t.Helper()
	dir := shortTempDir(t) // podman refuses a runroot longer than 50 characters
	var conf strings.Builder
	conf.WriteString("unqualified-search-registries = []\n")
	for _, reg := range registries {
		fmt.Fprintf(&conf, "[[registry]]\nprefix = %q\nlocation = %q\n[[registry.mirror]]\nlocation = %q\ninsecure = true\n",
			reg, reg, mirror+"/"+reg)
	}
	storageConf := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "run"))
	return &podmanStore{
		env: []string{
			"CONTAINERS_REGISTRIES_CONF=" + writeFile(t, filepath.Join(dir, "registries.conf"), conf.String()),
			"CONTAINERS_STORAGE_CONF=" + writeFile(t, filepath.Join(dir, "storage.conf"), storageConf),
			"CONTAINERS_CONF=" + writeFile(t, filepath.Join(dir, "containers.conf"), ""),
			"HOME=" + dir,
		},
		global: podmanGlobalFlags(dir),
		policy: writeFile(t, filepath.Join(dir, "policy.json"), insecureAcceptAnything),
	}
}

// pull pulls ref and reports what podman recorded for it.
func (p *podmanStore) pull(ctx context.Context, t *testing.T, ref string) pulled {
	t.Helper()
	run(ctx, t, p.env, "podman", append(append([]string(nil), p.global...), "pull", "--signature-policy", p.policy, ref)...)
	out := run(ctx, t, p.env, "podman", append(append([]string(nil), p.global...), "image", "inspect", ref)...)
	return podmanPulled(t, out)
}

// connCounter is a TCP listener that counts and drops every connection: a
// stand-in for a host pullcache must never dial.
type connCounter struct {
	ln    net.Listener
	n     atomic.Int64
	wg    sync.WaitGroup
	close sync.Once
}

func newConnCounter(t *testing.T) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &connCounter{ln: ln}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *connCounter) addr() string { return c.ln.Addr().String() }

func (c *connCounter) stop() {
	c.close.Do(func() {
		c.ln.Close()
		c.wg.Wait()
	})
}

// TestUnconfiguredRegistryRefused asks one pullcache, serving docker.io and
// ghcr.io, for registries it does not serve, by ns= and by path prefix: a
// name on the internet (quay.io) and the address of a live listener on
// 127.0.0.1 (which an open proxy would dial, loopback being a LAN address).
// Every request gets 404 NAME_UNKNOWN and nothing reaches any upstream or the
// listener.
func TestUnconfiguredRegistryRefused(t *testing.T) {
	requireE2E(t)
	img, err := schema2Image(1, 16<<10, hostPlatform)
	if err != nil {
		t.Fatal(err)
	}
	hub := newFrontedUpstream(t, front{})
	hub.pushShared(t, img)
	ghcr := newFrontedUpstream(t, front{})
	ghcr.pushShared(t, img)
	decoy := newConnCounter(t)
	srv := startPullcache(t, t.TempDir(), map[string]string{"docker.io": hub.url(), "ghcr.io": ghcr.url()})
	blob := "/blobs/" + digestOf(t, img.ConfigName)

	tests := []struct{ name, method, path string }{
		{"ns=quay.io manifest", http.MethodGet, "/v2/org/app/manifests/v1?ns=quay.io"},
		{"ns=quay.io manifest HEAD", http.MethodHead, "/v2/org/app/manifests/v1?ns=quay.io"},
		{"ns=quay.io blob", http.MethodGet, "/v2/org/app" + blob + "?ns=quay.io"},
		{"ns=quay.io tags", http.MethodGet, "/v2/org/app/tags/list?ns=quay.io"},
		{"prefix quay.io manifest", http.MethodGet, "/v2/quay.io/org/app/manifests/v1"},
		{"prefix quay.io blob", http.MethodGet, "/v2/quay.io/org/app" + blob},
		{"ns=loopback listener", http.MethodGet, "/v2/org/app/manifests/v1?ns=" + decoy.addr()},
		{"prefix loopback listener", http.MethodGet, "/v2/" + decoy.addr() + "/org/app/manifests/v1"},
		{"prefix loopback listener blob", http.MethodGet, "/v2/" + decoy.addr() + "/org/app" + blob},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://"+srv.addr+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: status %s, want 404", tc.method, tc.path, resp.Status)
			}
			if tc.method == http.MethodHead {
				return // no body to read the code from
			}
			var body struct {
				Errors []struct{ Code string } `json:"errors"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("%s %s: error body: %v", tc.method, tc.path, err)
			}
			if len(body.Errors) != 1 || body.Errors[0].Code != "NAME_UNKNOWN" {
				t.Errorf("%s %s: errors %+v, want one NAME_UNKNOWN", tc.method, tc.path, body.Errors)
			}
		})
	}

	for name, up := range map[string]*frontedUpstream{"docker.io": hub, "ghcr.io": ghcr} {
		if reqs := up.requestLog(); len(reqs) != 0 {
			t.Errorf("%s upstream received %d request(s), want 0:\n%s", name, len(reqs), strings.Join(reqs, "\n"))
		}
	}
	decoy.stop() // every accept counted has been counted
	if n := decoy.n.Load(); n != 0 {
		t.Errorf("the listener at %s, named as an unconfigured registry, received %d connection(s), want 0", decoy.addr(), n)
	}
	if logs := srv.logs.String(); strings.Contains(logs, "upstream request failed") {
		t.Errorf("pullcache logged an upstream attempt:\n%s", logs)
	}
}

// TestFailoverWithRealClients configures ghcr.io with two endpoints, the
// first one failing, and has crane pull through pullcache: the second
// endpoint serves the pull, and pullcache logs the first one's failure.
func TestFailoverWithRealClients(t *testing.T) {
	requireE2E(t)
	c := craneClient{}
	requireTools(t, c.Tools()...)
	tests := []struct {
		name string
		// down returns the URL of the failing first endpoint and a check of
		// what it saw, run after the pull.
		down func(t *testing.T) (url string, check func(t *testing.T))
	}{
		{"connection refused", func(t *testing.T) (string, func(*testing.T)) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close() // nothing listens there any more
			return "http://" + addr, func(*testing.T) {}
		}},
		{"503 on every request", func(t *testing.T) (string, func(*testing.T)) {
			var n atomic.Int64
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"errors":[{"code":"UNAVAILABLE","message":"down for maintenance"}]}`)
			}))
			t.Cleanup(s.Close)
			return s.URL, func(t *testing.T) {
				if n.Load() == 0 {
					t.Errorf("the failing endpoint received no request: failover was not exercised")
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, err := schema2Image(2, 64<<10, hostPlatform)
			if err != nil {
				t.Fatal(err)
			}
			live := newFrontedUpstream(t, front{})
			want, _ := live.pushShared(t, img)
			downURL, check := tc.down(t)
			cfg := writeRegistriesConfig(t, map[string]registryConf{
				"docker.io": {Endpoints: []string{live.url()}},
				"ghcr.io":   {Endpoints: []string{downURL, live.url()}},
			}, nil)
			srv := startPullcache(t, t.TempDir(), nil, "--config", cfg)

			got := c.Pull(context.Background(), t, srv.addr, "ghcr.io/"+sharedRef, "")
			if got.Manifest != want {
				t.Errorf("pulled manifest %s, want %s", got.Manifest, want)
			}
			if got.Tag != want {
				t.Errorf("tag resolved to %s, want %s", got.Tag, want)
			}
			check(t)
			if live.count(http.MethodGet, kindManifest) == 0 {
				t.Errorf("the live endpoint received no manifest GET")
			}
			downHost := strings.TrimPrefix(downURL, "http://")
			if logs := srv.logs.String(); !strings.Contains(logs, "endpoint="+downHost) {
				t.Errorf("pullcache's log names no failure of endpoint %s:\n%s", downHost, logs)
			}
		})
	}
}
