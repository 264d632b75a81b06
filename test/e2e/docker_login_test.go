package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pushBack writes r under its ref through the back door of fu (no auth,
// not counted).
func (fu *frontedUpstream) pushBack(t *testing.T, r *runnable) {
	t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(fu.back.URL, "http://")+"/"+r.ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := remote.Write(ref, r.image, remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// TestDockerLoginToTLSMirror: a test-owned Docker daemon logs in to a TLS
// mirror with logins on (a wrong password refused), pulls and runs a
// private ghcr.io image as ci; user dev and an anonymous client are
// refused it; the public image pulls anonymously after logout, by the
// mirror's name and through registry-mirrors. The mirror
// is on loopback, which the daemon treats as an insecure registry: it
// speaks TLS to it without checking the certificate
// (TestDockerTrustsMirrorCA covers a checked one).
func TestDockerLoginToTLSMirror(t *testing.T) {
	ctx := context.Background()
	requireDocker(t)
	imgs := loadDockerImages(t)
	hub := newFrontedUpstream(t, front{})
	hub.pushBack(t, imgs.v1)
	ghcr := newFrontedUpstream(t, front{basic: true, user: "mirror-bot", password: "upstream-pw-c71e"})
	ghcr.pushBack(t, imgs.app) // org/app:v1, which the rules give to ci only
	m := startSecureMirror(t, hub, ghcr)
	d := startDockerd(ctx, t, dockerdOptions{})
	private := m.addr + "/ghcr.io/" + imgs.app.ref

	refused := func(what, want string, args ...string) {
		t.Helper()
		from := logMark(m.pullcache)
		if _, out, err := d.dockerErr(ctx, t, args...); err == nil {
			t.Errorf("%s succeeded:\n%s", what, out)
		} else {
			logRefusal(t, m.pullcache, from, what, want, out)
		}
	}
	refused("anonymous docker pull of the private image", unauthorized, "pull", private)
	refused("docker login with a wrong password", unauthorized, "login", "-u", "ci", "-p", "not-the-password", m.addr)
	d.docker(ctx, t, "login", "-u", "dev", "-p", mirrorUsers["dev"], m.addr)
	refused("docker pull of the private image as dev", denied, "pull", private)
	out := d.docker(ctx, t, "login", "-u", "ci", "-p", mirrorUsers["ci"], m.addr)
	if !strings.Contains(out, "Login Succeeded") {
		t.Errorf("docker login as ci: %q", out)
	}
	d.pullAndRun(ctx, t, private, imgs.app)
	d.docker(ctx, t, "logout", m.addr)
	d.pullAndRun(ctx, t, m.addr+"/"+imgs.v1.ref, imgs.v1)

	// As Docker Hub's mirror (registry-mirrors), with logins on: the daemon
	// takes an anonymous token and pulls the public image, never Hub.
	d.reload(ctx, t, dockerdOptions{Mirrors: []string{"https://" + m.addr}})
	d.pullAndRun(ctx, t, strings.TrimPrefix(imgs.v1.ref, "library/"), imgs.v1)
	if got := d.hubAttempts(); got != nil {
		t.Errorf("the daemon went past the mirror to Docker Hub: %v", got)
	}

	logs := m.logs.String()
	for _, secret := range []string{mirrorUsers["ci"], mirrorUsers["dev"], "upstream-pw-c71e"} {
		if strings.Contains(logs, secret) {
			t.Errorf("pullcache's log holds the password %q", secret)
		}
	}
}
