package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	e2eSigType  = "application/vnd.example.signature"
	e2eSBOMType = "application/spdx+json"
)

// regctl runs regctl with a configuration of its own, plain HTTP for hosts.
type regctl struct{ env []string }

func newRegctl(ctx context.Context, t *testing.T, hosts ...string) regctl {
	t.Helper()
	requireTools(t, "regctl")
	dir := t.TempDir()
	r := regctl{env: []string{"HOME=" + dir, "REGCTL_CONFIG=" + filepath.Join(dir, "regctl.json"), "DOCKER_CONFIG=" + filepath.Join(dir, ".docker")}}
	for _, h := range hosts {
		r.run(ctx, t, "registry", "set", "--tls", "disabled", h)
	}
	return r
}

func (r regctl) run(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	return run(ctx, t, r.env, "regctl", args...)
}

// referrers lists the referrers of ref with regctl artifact list: digest →
// artifact type.
func (r regctl) referrers(ctx context.Context, t *testing.T, ref string, flags ...string) map[string]string {
	t.Helper()
	out := r.run(ctx, t, append(append([]string{"artifact", "list"}, flags...), "--format", "{{jsonPretty .}}", ref)...)
	var list struct {
		Descriptors []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"descriptors"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("regctl artifact list: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, d := range list.Descriptors {
		got[d.Digest] = d.ArtifactType
	}
	return got
}

// attach pushes a signature and an SBOM of host/library/app:v1 with
// regctl artifact put, and returns their digests. Each artifact's config
// has the artifact's type as its media type too: go-containerregistry's
// referrers API reports the config media type as artifactType, not the
// manifest's artifactType field.
func attach(ctx context.Context, t *testing.T, rc regctl, host string) (sig, sbom string) {
	t.Helper()
	subject := host + "/library/app:v1"
	dir := t.TempDir()
	config := writeFile(t, filepath.Join(dir, "config.json"), "{}")
	for _, a := range []struct{ file, content, typ string }{
		{"sig.txt", "signed by e2e", e2eSigType}, {"sbom.json", `{"spdxVersion":"SPDX-2.3"}`, e2eSBOMType},
	} {
		rc.run(ctx, t, "artifact", "put", "--artifact-type", a.typ, "--config-type", a.typ, "--config-file", config,
			"--subject", subject, "-f", writeFile(t, filepath.Join(dir, a.file), a.content))
	}
	for d, typ := range rc.referrers(ctx, t, subject) {
		switch typ {
		case e2eSigType:
			sig = d
		case e2eSBOMType:
			sbom = d
		}
	}
	if sig == "" || sbom == "" {
		t.Fatalf("the upstream does not list the attached artifacts")
	}
	return sig, sbom
}

func pushSubject(t *testing.T, host string) {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/library/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("pushing the subject: %v", err)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+" "+v)
	}
	sort.Strings(out)
	return out
}

// TestReferrersWithRegctl attaches a signature and an SBOM to an image at
// the upstream with regctl artifact put, then lists them through the
// mirror with regctl artifact list and tree, fetches them, and does it
// again offline after an export and import (where regctl repo ls reads
// the catalog too). Upstreams: the reference
// registry (no referrers API: regctl and pullcache use the referrers tag
// schema) and go-containerregistry's registry with its referrers API.
func TestReferrersWithRegctl(t *testing.T) {
	requireE2E(t)
	upstreams := []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"reference registry, no referrers API", startReferenceRegistry},
		{"go-containerregistry with the referrers API", func(t *testing.T) string {
			return newUpstream(t, registry.WithReferrersSupport(true)).host
		}},
	}
	for _, u := range upstreams {
		t.Run(u.name, func(t *testing.T) {
			ctx := context.Background()
			host := u.start(t)
			pushSubject(t, host)
			data := t.TempDir()
			srv := startPullcache(t, data, map[string]string{"docker.io": "http://" + host})
			rc := newRegctl(ctx, t, host, srv.addr)
			sig, sbom := attach(ctx, t, rc, host)
			want := map[string]string{sig: e2eSigType, sbom: e2eSBOMType}
			subject := srv.addr + "/library/app:v1"

			if got := rc.referrers(ctx, t, subject); len(got) != 2 || got[sig] != e2eSigType || got[sbom] != e2eSBOMType {
				t.Fatalf("through the mirror: %v, want %v", keys(got), keys(want))
			}
			if got := rc.referrers(ctx, t, subject, "--filter-artifact-type", e2eSBOMType); len(got) != 1 || got[sbom] != e2eSBOMType {
				t.Errorf("filtered by artifact type: %v", keys(got))
			}
			tree := rc.run(ctx, t, "artifact", "tree", subject)
			for d := range want {
				if !strings.Contains(tree, d) {
					t.Errorf("regctl artifact tree does not show %s:\n%s", d, tree)
				}
			}
			if got := rc.run(ctx, t, "artifact", "get", srv.addr+"/library/app@"+sig); got != "signed by e2e" {
				t.Errorf("the signature through the mirror: %q", got)
			}
			rc.run(ctx, t, "artifact", "get", srv.addr+"/library/app@"+sbom)

			bundle := filepath.Join(t.TempDir(), "bundle.tar")
			pullcacheCmd(ctx, t, "export", "--data", data, "-o", bundle, "docker.io/library/app:v1")
			srv.stop()
			airgapped := t.TempDir()
			out := pullcacheCmd(ctx, t, "import", "--data", airgapped, bundle)
			if strings.Count(out, "imported referrer") != 2 {
				t.Errorf("import output does not report 2 referrers:\n%s", out)
			}
			off := startPullcache(t, airgapped, nil, "--offline")
			rc = newRegctl(ctx, t, off.addr)
			if got := rc.referrers(ctx, t, off.addr+"/library/app:v1"); len(got) != 2 || got[sig] != e2eSigType || got[sbom] != e2eSBOMType {
				t.Errorf("offline after export and import: %v, want %v", keys(got), keys(want))
			}
			if got := rc.run(ctx, t, "artifact", "get", off.addr+"/library/app@"+sig); got != "signed by e2e" {
				t.Errorf("the signature offline: %q", got)
			}
			// The catalog lists what the mirror holds, as regctl repo ls reads it.
			if got := strings.Fields(rc.run(ctx, t, "repo", "ls", off.addr)); len(got) != 1 || got[0] != "library/app" {
				t.Errorf("regctl repo ls offline: %q, want [library/app]", got)
			}
		})
	}
}
