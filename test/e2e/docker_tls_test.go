package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerTrustsMirrorCA pulls through an HTTPS mirror whose certificate
// a test CA signed: a daemon given the CA (dockerdOptions.CAFile) pulls
// through it; one without falls back to Docker Hub on the certificate
// error, until the mirror is in its insecure-registries. The mirror is at a bridge's address, since the daemon checks no
// certificate of a loopback registry. (TLS is a front before pullcache
// here: this tests the daemon's side, and the harness that tests of
// pullcache's own TLS and docker login build on.)
func TestDockerTrustsMirrorCA(t *testing.T) {
	ctx := context.Background()
	requireDocker(t)
	imgs := loadDockerImages(t)
	hub := newUpstream(t)
	pushRunnable(t, hub, imgs.v1)
	srv := startPullcache(t, t.TempDir(), map[string]string{"docker.io": hub.url()})

	untrusting := startDockerd(ctx, t, dockerdOptions{})
	_, gateway := untrusting.network(ctx, t)
	caPEM, cert := newRegistryTestCA(t, gateway)
	caFile := writeFile(t, filepath.Join(t.TempDir(), "ca.pem"), string(caPEM))
	front := newForwarder(t, gateway, "http://"+srv.addr, &cert)
	mirror := front.url() // https://GATEWAY:PORT

	trusting := startDockerd(ctx, t, dockerdOptions{Mirrors: []string{mirror}, CAFile: caFile})
	trusting.pullAndRun(ctx, t, "dockerhello:v1", imgs.v1)
	if got := trusting.hubAttempts(); got != nil {
		t.Errorf("the daemon given the CA went past the mirror: %v", got)
	}

	untrusting.reload(ctx, t, dockerdOptions{Mirrors: []string{mirror}})
	if _, combined, err := untrusting.dockerErr(ctx, t, "pull", "dockerhello:v1"); err == nil {
		t.Errorf("the daemon without the CA pulled through the mirror:\n%s", combined)
	}
	fellBack := ""
	for _, line := range strings.Split(untrusting.logs.String(), "\n") {
		if strings.Contains(line, "Attempting next endpoint") && strings.Contains(line, mirror) {
			fellBack = line
		}
	}
	if !strings.Contains(fellBack, "x509") {
		t.Errorf("the daemon without the CA did not fall back on the certificate error (%q)", fellBack)
	}
	t.Logf("without the CA: %s", fellBack)

	// insecure-registries: the daemon takes the mirror's certificate unchecked.
	untrusting.reload(ctx, t, dockerdOptions{Mirrors: []string{mirror}, Insecure: []string{strings.TrimPrefix(mirror, "https://")}})
	tried := len(untrusting.hubAttempts())
	untrusting.pullAndRun(ctx, t, "dockerhello:v1", imgs.v1)
	if got := untrusting.hubAttempts()[tried:]; len(got) != 0 {
		t.Errorf("with the mirror in insecure-registries the daemon went past it: %v", got)
	}
}
