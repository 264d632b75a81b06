package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// secureMirror is a pullcache serving HTTPS with a certificate of a CA
// the test generated, with logins and access rules on.
type secureMirror struct {
	*pullcache
	caFile  string // the CA, PEM
	certDir string // a containers-certs.d(5) directory trusting it
}

// logRefusal checks that a client's failed attempt, begun when pullcache's
// log stood at from, was refused by pullcache: the last refusal it logged
// during the attempt (401 UNAUTHORIZED or 403 DENIED) is want, and no
// manifest was served. A client that failed for any other reason (TLS, a
// crash, a network error) never reached that answer and fails the test.
// It logs the client's last line.
func logRefusal(t *testing.T, p *pullcache, from int, what, want, out string) {
	t.Helper()
	var refusal *logRequest
	// The client may exit before pullcache's log line is read: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for refusal == nil && time.Now().Before(deadline) {
		for _, r := range pullcacheRequests(p.logs.String()[from:]) {
			if (r.status == "401" && r.code == "UNAUTHORIZED") || (r.status == "403" && r.code == "DENIED") {
				refusal = &r
			}
			if strings.Contains(r.path, "/manifests/") && strings.HasPrefix(r.status, "2") {
				t.Errorf("%s: pullcache served %s %s (%s) during the refused attempt", what, r.method, r.path, r.status)
			}
		}
		if refusal == nil {
			<-time.After(20 * time.Millisecond)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if refusal == nil {
		t.Errorf("%s failed without pullcache refusing it (no 401 UNAUTHORIZED or 403 DENIED logged): %s", what, lines[len(lines)-1])
		return
	}
	if got := refusal.status + " " + refusal.code; got != want {
		t.Errorf("%s: pullcache's last refusal was %s (%s %s), want %s", what, got, refusal.method, refusal.path, want)
	}
	t.Logf("%s refused, as it must be (%s %s: %s %s): %s", what, refusal.method, refusal.path, refusal.status, refusal.code, lines[len(lines)-1])
}

// The refusals logRefusal expects: no or wrong credentials, and a user
// the access rules do not admit.
const (
	unauthorized = "401 UNAUTHORIZED"
	denied       = "403 DENIED"
)

// logMark is where pullcache's log stands, for logRefusal.
func logMark(p *pullcache) int { return len(p.logs.String()) }

// mirrorUsers are the mirror's logins: ci may pull the private ghcr.io
// repositories, dev only the public registry.
var mirrorUsers = map[string]string{"ci": "ci-login-pw-3d1", "dev": "dev-login-pw-8a0"}

// startSecureMirror serves docker.io from hub (anonymous pulls allowed)
// and ghcr.io from ghcr (its credentials held by the mirror; org/* for ci).
func startSecureMirror(t *testing.T, hub, ghcr *frontedUpstream) *secureMirror {
	t.Helper()
	dir := t.TempDir()
	caPEM, pair := newRegistryTestCA(t, "127.0.0.1")
	keyDER, err := x509.MarshalECPrivateKey(pair.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	m := &secureMirror{caFile: writeFile(t, filepath.Join(dir, "ca.pem"), string(caPEM))}
	m.certDir = filepath.Dir(writeFile(t, filepath.Join(dir, "certs.d", "ca.crt"), string(caPEM)))
	var htpasswd strings.Builder
	for user, pw := range mirrorUsers {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&htpasswd, "%s:%s\n", user, h)
	}
	conf := map[string]any{
		"registries": map[string]any{
			"docker.io": map[string]any{"endpoints": []string{hub.url()}},
			"ghcr.io":   map[string]any{"endpoints": []string{ghcr.url()}, "username": "mirror-bot", "password": "upstream-pw-c71e"},
		},
		"tls": map[string]string{
			"cert": writeFile(t, filepath.Join(dir, "tls.crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Certificate[0]}))),
			"key":  writeFile(t, filepath.Join(dir, "tls.key"), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))),
		},
		"auth": map[string]any{"htpasswd": writeFile(t, filepath.Join(dir, "htpasswd"), htpasswd.String())},
		"access": []map[string]any{
			{"registries": []string{"docker.io"}, "anonymous": true},
			{"registries": []string{"ghcr.io"}, "repositories": []string{"org/*"}, "users": []string{"ci"}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, filepath.Join(dir, "pullcache.yml"), string(b))
	m.pullcache = startPullcache(t, t.TempDir(), nil, "--config", cfg)
	return m
}

// TestTLSMirrorWithLogins drives podman, skopeo, crane and containerd
// against a TLS mirror with logins: each logs in (or passes credentials)
// and pulls a private ghcr.io image the mirror holds credentials for; an
// anonymous client, or one with a wrong password or a user the rules do not
// admit, is refused it, while the public docker.io image pulls
// anonymously. (docker login: TestDockerLoginToTLSMirror.)
func TestTLSMirrorWithLogins(t *testing.T) {
	requireE2E(t)
	hub := newFrontedUpstream(t, front{})
	ghcr := newFrontedUpstream(t, front{basic: true, user: "mirror-bot", password: "upstream-pw-c71e"})
	var want [2]string
	for i, up := range []*frontedUpstream{hub, ghcr} {
		img, err := schema2Image(2, 32<<10, hostPlatform)
		if err != nil {
			t.Fatal(err)
		}
		want[i], _ = up.pushShared(t, img)
	}
	public, private := want[0], want[1]
	m := startSecureMirror(t, hub, ghcr)
	ctx := context.Background()

	t.Run("podman", func(t *testing.T) { podmanLoginPull(ctx, t, m, public, private) })
	t.Run("skopeo", func(t *testing.T) { skopeoCredsCopy(ctx, t, m, public, private) })
	t.Run("crane", func(t *testing.T) { craneAuthLogin(ctx, t, m, public, private) })
	t.Run("containerd", func(t *testing.T) { ctrUserPull(ctx, t, m, public, private) })

	logs := m.logs.String()
	for _, secret := range []string{mirrorUsers["ci"], mirrorUsers["dev"], "upstream-pw-c71e"} {
		if strings.Contains(logs, secret) {
			t.Errorf("pullcache's log holds the password %q", secret)
		}
	}
	for _, want := range []string{"user=ci", "user=dev", "status=401", "status=403"} {
		if !strings.Contains(logs, want) {
			t.Errorf("pullcache's log has no %q: decisions are not logged", want)
		}
	}
}

func podmanLoginPull(ctx context.Context, t *testing.T, m *secureMirror, public, private string) {
	requireTools(t, podmanClient{}.Tools()...)
	dir := shortTempDir(t)
	env := []string{
		"CONTAINERS_REGISTRIES_CONF=" + writeFile(t, filepath.Join(dir, "registries.conf"), "unqualified-search-registries = []\n"),
		"CONTAINERS_STORAGE_CONF=" + writeFile(t, filepath.Join(dir, "storage.conf"), fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "run"))),
		"CONTAINERS_CONF=" + writeFile(t, filepath.Join(dir, "containers.conf"), ""),
		// podman refuses a REGISTRY_AUTH_FILE that does not exist.
		"REGISTRY_AUTH_FILE=" + writeFile(t, filepath.Join(dir, "auth.json"), `{"auths":{}}`),
		"HOME=" + dir,
	}
	policy := writeFile(t, filepath.Join(dir, "policy.json"), insecureAcceptAnything)
	podman := func(args ...string) []string { return append(podmanGlobalFlags(dir), args...) }
	pull := func(ref string) (string, error) {
		_, out, err := runErr(ctx, t, env, "podman", podman("pull", "--cert-dir", m.certDir, "--signature-policy", policy, ref)...)
		return out, err
	}
	privRef, pubRef := m.addr+"/ghcr.io/"+sharedRef, m.addr+"/"+sharedRef

	from := logMark(m.pullcache)
	if out, err := pull(privRef); err == nil {
		t.Fatalf("anonymous podman pull of the private image succeeded:\n%s", out)
	} else {
		logRefusal(t, m.pullcache, from, "anonymous podman pull", unauthorized, out)
	}
	from = logMark(m.pullcache)
	if _, out, err := runErr(ctx, t, env, "podman", podman("login", "--cert-dir", m.certDir, "-u", "ci", "-p", "not-the-password", m.addr)...); err == nil {
		t.Fatalf("podman login with a wrong password succeeded:\n%s", out)
	} else {
		logRefusal(t, m.pullcache, from, "podman login with a wrong password", unauthorized, out)
	}
	run(ctx, t, env, "podman", podman("login", "--cert-dir", m.certDir, "-u", "ci", "-p", mirrorUsers["ci"], m.addr)...)
	if out, err := pull(privRef); err != nil {
		t.Fatalf("podman pull after login: %v\n%s", err, out)
	}
	got := podmanPulled(t, run(ctx, t, env, "podman", podman("image", "inspect", privRef)...))
	if got.Manifest != private {
		t.Errorf("podman pulled %s, want %s", got.Manifest, private)
	}
	run(ctx, t, env, "podman", podman("logout", m.addr)...)
	if out, err := pull(pubRef); err != nil {
		t.Fatalf("anonymous podman pull of the public image: %v\n%s", err, out)
	}
	if got := podmanPulled(t, run(ctx, t, env, "podman", podman("image", "inspect", pubRef)...)); got.Manifest != public {
		t.Errorf("podman pulled %s, want %s", got.Manifest, public)
	}
}

func skopeoCredsCopy(ctx context.Context, t *testing.T, m *secureMirror, public, private string) {
	requireTools(t, skopeoClient{}.Tools()...)
	dir := t.TempDir()
	env := []string{
		"CONTAINERS_REGISTRIES_CONF=" + writeFile(t, filepath.Join(dir, "registries.conf"), ""),
		"REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json"),
		"HOME=" + dir,
	}
	policy := writeFile(t, filepath.Join(dir, "policy.json"), insecureAcceptAnything)
	copyTo := func(out, ref string, creds ...string) (string, error) {
		args := []string{"--policy", policy, "copy", "--src-cert-dir", m.certDir}
		if len(creds) > 0 {
			args = append(args, "--src-creds", creds[0])
		}
		args = append(args, "docker://"+ref, "dir:"+filepath.Join(dir, out))
		_, combined, err := runErr(ctx, t, env, "skopeo", args...)
		return combined, err
	}
	privRef := m.addr + "/ghcr.io/" + sharedRef
	for name, creds := range map[string][]string{
		"anonymous":      nil,
		"wrong password": {"ci:not-the-password"},
		"not admitted":   {"dev:" + mirrorUsers["dev"]},
	} {
		refusals := map[string]string{"anonymous": unauthorized, "wrong password": unauthorized, "not admitted": denied}
		from := logMark(m.pullcache)
		if out, err := copyTo("refused", privRef, creds...); err == nil {
			t.Errorf("skopeo copy of the private image, %s, succeeded:\n%s", name, out)
		} else {
			logRefusal(t, m.pullcache, from, "skopeo copy, "+name, refusals[name], out)
		}
	}
	if out, err := copyTo("out", privRef, "ci:"+mirrorUsers["ci"]); err != nil {
		t.Fatalf("skopeo copy --src-creds ci: %v\n%s", err, out)
	}
	if got := (skopeoClient{}).pulledManifest(t, dir, privRef); got != private {
		t.Errorf("skopeo copied %s, want %s", got, private)
	}
	raw := run(ctx, t, env, "skopeo", "inspect", "--raw", "--cert-dir", m.certDir, "--creds", "dev:"+mirrorUsers["dev"], "docker://"+m.addr+"/"+sharedRef)
	if got := sha256Digest([]byte(raw)); got != public {
		t.Errorf("skopeo inspect --creds dev of the public image: %s, want %s", got, public)
	}
	if out, err := copyTo("public", m.addr+"/"+sharedRef); err != nil {
		t.Fatalf("anonymous skopeo copy of the public image: %v\n%s", err, out)
	}
}

func craneAuthLogin(ctx context.Context, t *testing.T, m *secureMirror, public, private string) {
	requireTools(t, craneClient{}.Tools()...)
	dir := t.TempDir()
	// crane trusts the system pool; SSL_CERT_FILE replaces it with the CA.
	env := []string{"HOME=" + dir, "DOCKER_CONFIG=" + filepath.Join(dir, ".docker"), "SSL_CERT_FILE=" + m.caFile}
	privRef := m.addr + "/ghcr.io/" + sharedRef
	from := logMark(m.pullcache)
	if _, out, err := runErr(ctx, t, env, "crane", "digest", privRef); err == nil {
		t.Fatalf("anonymous crane digest of the private image succeeded:\n%s", out)
	} else {
		logRefusal(t, m.pullcache, from, "anonymous crane digest", unauthorized, out)
	}
	run(ctx, t, env, "crane", "auth", "login", m.addr, "-u", "ci", "-p", mirrorUsers["ci"])
	if got := strings.TrimSpace(run(ctx, t, env, "crane", "digest", privRef)); got != private {
		t.Errorf("crane digest after login: %s, want %s", got, private)
	}
	oci := filepath.Join(dir, "oci")
	run(ctx, t, env, "crane", "pull", "--format", "oci", privRef, oci)
	if got := ociLayoutManifest(t, oci, sharedTag); got != private {
		t.Errorf("crane pulled %s, want %s", got, private)
	}
	run(ctx, t, env, "crane", "auth", "logout", m.addr)
	from = logMark(m.pullcache)
	if _, out, err := runErr(ctx, t, env, "crane", "digest", privRef); err == nil {
		t.Errorf("crane digest of the private image after logout succeeded:\n%s", out)
	} else {
		logRefusal(t, m.pullcache, from, "crane digest after logout", unauthorized, out)
	}
	if got := strings.TrimSpace(run(ctx, t, env, "crane", "digest", m.addr+"/"+sharedRef)); got != public {
		t.Errorf("anonymous crane digest of the public image: %s, want %s", got, public)
	}
}

func ctrUserPull(ctx context.Context, t *testing.T, m *secureMirror, public, private string) {
	requireTools(t, containerdClient{}.Tools()...)
	d := startContainerd(ctx, t)
	hostsDir := filepath.Join(d.dir, "certs.d")
	for _, reg := range []string{"docker.io", "ghcr.io"} {
		writeFile(t, filepath.Join(hostsDir, reg, "hosts.toml"), fmt.Sprintf(`server = "https://%s"
[host."https://%s"]
  capabilities = ["pull", "resolve"]
  ca = %q
`, reg, m.addr, m.caFile))
	}
	privRef := "ghcr.io/" + sharedRef
	from := logMark(m.pullcache)
	if _, out, err := runErr(ctx, t, nil, "ctr", "--address", d.sock, "images", "pull", "--hosts-dir", hostsDir, privRef); err == nil {
		t.Fatalf("anonymous ctr pull of the private image succeeded:\n%s", out)
	} else {
		logRefusal(t, m.pullcache, from, "anonymous ctr pull", unauthorized, out)
	}
	from = logMark(m.pullcache)
	if _, out, err := runErr(ctx, t, nil, "ctr", "--address", d.sock, "images", "pull", "--hosts-dir", hostsDir, "--user", "dev:"+mirrorUsers["dev"], privRef); err == nil {
		t.Fatalf("ctr pull of the private image as dev succeeded:\n%s", out)
	} else {
		logRefusal(t, m.pullcache, from, "ctr pull as dev", denied, out)
	}
	d.ctr(ctx, t, "images", "pull", "--hosts-dir", hostsDir, "--user", "ci:"+mirrorUsers["ci"], privRef)
	if _, got := d.imageTarget(ctx, t, privRef); got != private {
		t.Errorf("ctr --user ci pulled %s, want %s", got, private)
	}
	pubRef := "docker.io/" + sharedRef
	d.ctr(ctx, t, "images", "pull", "--hosts-dir", hostsDir, pubRef)
	if _, got := d.imageTarget(ctx, t, pubRef); got != public {
		t.Errorf("anonymous ctr pull of the public image: %s, want %s", got, public)
	}
}
