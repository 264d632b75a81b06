package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pullcacheCmd runs a pullcache subcommand (import, export, warm) to its end
// and returns its standard output.
func pullcacheCmd(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	stdout, combined, err := runIn(ctx, t, serverEnv(), nil, pullcacheBin, args...)
	if err != nil {
		t.Fatalf("$ pullcache %s\nfailed: %v\n%s", strings.Join(args, " "), err, combined)
	}
	return stdout
}

// skopeoEnv is an isolated skopeo configuration in dir.
func skopeoEnv(t *testing.T, dir string) (env []string, global []string) {
	env = []string{"CONTAINERS_REGISTRIES_CONF=" + writeFile(t, filepath.Join(dir, "registries.conf"), "")}
	global = []string{"--policy", writeFile(t, filepath.Join(dir, "policy.json"), insecureAcceptAnything), "--tmpdir", dir}
	return env, global
}

// skopeoCopy runs skopeo copy src dst with extra copy flags.
func skopeoCopy(ctx context.Context, t *testing.T, src, dst string, flags ...string) {
	t.Helper()
	dir := t.TempDir()
	env, global := skopeoEnv(t, dir)
	args := append(append(global, "copy", "--src-tls-verify=false"), flags...)
	run(ctx, t, env, "skopeo", append(args, src, dst)...)
}

// configDigestVia asks the mirror for an image's config with crane and
// returns its digest: the image ID a legacy save must preserve.
func configDigestVia(ctx context.Context, t *testing.T, mirror, image string) string {
	t.Helper()
	dir := t.TempDir()
	env := []string{"HOME=" + dir, "DOCKER_CONFIG=" + filepath.Join(dir, ".docker")}
	cfg := run(ctx, t, env, "crane", "config", "--insecure", mirror+"/"+image)
	sum := sha256.Sum256([]byte(cfg))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func upstreamConfigDigest(t *testing.T, im *testImage) string {
	t.Helper()
	h, err := im.image.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// compressWith runs a compression command (bzip2, xz) on file into a new
// file.
func compressWith(ctx context.Context, t *testing.T, file, tool string) string {
	t.Helper()
	out := file + "." + tool
	data := run(ctx, t, nil, "sh", "-c", tool+" -c < "+file+" > "+out+" && echo ok")
	if strings.TrimSpace(data) != "ok" {
		t.Fatalf("%s failed", tool)
	}
	return out
}

// ociIndexImage is an OCI index of two OCI images (linux/amd64, linux/arm64),
// named library/ocimulti:v1: skopeo writes an OCI layout byte-exact only
// from OCI media types.
func ociIndexImage(t *testing.T) (*testImage, []pullCase) {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := ociImage(1, 64<<10, v1.Platform{OS: "linux", Architecture: arch})
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	im := &testImage{name: "ocimulti", tag: "v1", index: idx}
	cases, err := casesFor(im)
	if err != nil {
		t.Fatal(err)
	}
	return im, cases
}

// archiveDigest is the digest of the (only) image an oci-archive holds, as
// the client that wrote it says: its index.json's one entry, read with
// go-containerregistry and checked against the blob it names, re-hashed.
// pullcache's own archive package is not asked: it is under test.
func archiveDigest(t *testing.T, file string) string {
	t.Helper()
	files := tarFiles(t, file)
	idx, err := v1.ParseIndexManifest(bytes.NewReader(files["index.json"]))
	if err != nil {
		t.Fatalf("%s: index.json: %v", file, err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("%s: index.json has %d entries, want 1", file, len(idx.Manifests))
	}
	d := idx.Manifests[0].Digest
	blob, ok := files[path.Join("blobs", d.Algorithm, d.Hex)]
	if !ok {
		t.Fatalf("%s: index.json names %s, which it does not hold", file, d)
	}
	if got, _, err := v1.SHA256(bytes.NewReader(blob)); err != nil || got != d {
		t.Fatalf("%s: the blob of %s hashes to %s (%v)", file, d, got, err)
	}
	return d.String()
}

// tarFiles reads the regular files of a tar archive (a test image's: small).
func tarFiles(t *testing.T, file string) map[string][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", file, hdr.Name, err)
		}
		files[path.Clean(hdr.Name)] = b
	}
}

// withTag returns cases whose tag digest is d (skopeo 1.9 rewrites an index
// it copies with --all; its images keep their digests).
func withTag(cases []pullCase, d string) []pullCase {
	out := make([]pullCase, len(cases))
	for i, c := range cases {
		c.want.Tag = d
		out[i] = c
	}
	return out
}

// TestImportSkopeoArchivesThenServeOffline makes docker-archive and
// oci-archive tarballs with real skopeo (plain, bzip2 and xz), imports them
// into an empty data directory, serves it --offline, and pulls with crane
// and skopeo: OCI archives give the upstream's digests, legacy saves the
// upstream's config digest (image ID). The upstream is never contacted.
func TestImportSkopeoArchivesThenServeOffline(t *testing.T) {
	requireE2E(t)
	requireTools(t, "skopeo", "crane", "bzip2", "xz")
	ctx := context.Background()
	fx := loadFixtures(t)
	up := newUpstream(t)
	multi, multiCases := ociIndexImage(t)
	up.push(t, append(fx.images, multi)...)
	s2, oci := fx.images[0], fx.images[1]
	work := t.TempDir()

	legacy := filepath.Join(work, "schema2.tar")
	skopeoCopy(ctx, t, "docker://"+up.host+"/"+s2.ref(), "docker-archive:"+legacy+":docker.io/"+s2.ref())
	ociArc := filepath.Join(work, "oci.tar")
	skopeoCopy(ctx, t, "docker://"+up.host+"/"+oci.ref(), "oci-archive:"+ociArc+":docker.io/"+oci.ref(), "--preserve-digests")
	multiArc := filepath.Join(work, "multi.tar")
	skopeoCopy(ctx, t, "docker://"+up.host+"/"+multi.ref(), "oci-archive:"+multiArc+":docker.io/"+multi.ref(), "--all")
	multiCases = withTag(multiCases, archiveDigest(t, multiArc))
	// The legacy save again, compressed, renamed: imported under other tags.
	bz := compressWith(ctx, t, legacy, "bzip2")
	xz := compressWith(ctx, t, legacy, "xz")

	data := t.TempDir()
	pullcacheCmd(ctx, t, "import", "--data", data, legacy, ociArc, multiArc)
	pullcacheCmd(ctx, t, "import", "--data", data, "--tag", "library/schema2:bz", bz)
	pullcacheCmd(ctx, t, "import", "--data", data, "--tag", "library/schema2:xz", xz)

	up.reset()
	srv := startPullcache(t, data, map[string]string{"docker.io": up.url()}, "--offline")
	wantCfg := upstreamConfigDigest(t, s2)
	for _, tag := range []string{"v1", "bz", "xz"} {
		image := "library/schema2:" + tag
		if got := configDigestVia(ctx, t, srv.addr, image); got != wantCfg {
			t.Errorf("%s: config %s, want the saved image ID %s", image, got, wantCfg)
		}
		craneClient{}.Pull(ctx, t, srv.addr, image, "")
	}
	for _, c := range []client{craneClient{}, skopeoClient{}} {
		for _, tc := range append([]pullCase{fx.cases[1]}, multiCases...) { // byte-exact
			checkPulled(t, tc, c.Pull(ctx, t, srv.addr, tc.image.ref(), tc.platform))
		}
	}
	if log := up.requestLog(); len(log) != 0 {
		t.Errorf("offline server contacted the upstream: %v", log)
	}
}

// TestWarmExportImportServeOffline warms a cache from a local upstream,
// stops the upstream and pulls offline; exports everything, imports the
// bundle into a fresh data directory and pulls offline there with every
// client (skopeo, crane, regctl, podman, containerd) and every digest
// unchanged; and checks skopeo reads the bundle as an oci-archive.
func TestWarmExportImportServeOffline(t *testing.T) {
	requireE2E(t)
	requireTools(t, "skopeo", "crane")
	ctx := context.Background()
	fx := loadFixtures(t)
	up := newUpstream(t)
	up.push(t, fx.images...)
	connected := t.TempDir()
	args := []string{"warm", "--data", connected, "--upstream", "docker.io=" + up.url()}
	for _, im := range fx.images {
		args = append(args, im.ref())
	}
	out := pullcacheCmd(ctx, t, args...)
	if !strings.Contains(out, "warmed 3 of 3 images") {
		t.Errorf("warm output:\n%s", out)
	}
	up.stop()

	warmed := startPullcache(t, connected, map[string]string{"docker.io": up.url()}, "--offline")
	for _, tc := range fx.cases {
		checkPulled(t, tc, craneClient{}.Pull(ctx, t, warmed.addr, tc.image.ref(), tc.platform))
	}
	warmed.stop()

	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	pullcacheCmd(ctx, t, "export", "--data", connected, "-o", bundle, "--all")
	airgapped := t.TempDir()
	pullcacheCmd(ctx, t, "import", "--data", airgapped, bundle)
	srv := startPullcache(t, airgapped, nil, "--offline")
	for _, c := range allClients() {
		t.Run(c.Name(), func(t *testing.T) {
			requireTools(t, c.Tools()...)
			for _, tc := range fx.cases {
				checkPulled(t, tc, c.Pull(ctx, t, srv.addr, tc.image.ref(), tc.platform))
			}
		})
	}

	out2 := filepath.Join(t.TempDir(), "out")
	skopeoCopy(ctx, t, "oci-archive:"+bundle+":docker.io/library/oci:v1", "dir:"+out2, "--preserve-digests")
	got, err := os.ReadFile(filepath.Join(out2, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := sha256Digest(got); d != fx.cases[1].want.Manifest {
		t.Errorf("skopeo read %s from the bundle, want %s", d, fx.cases[1].want.Manifest)
	}
}

// TestImportIntoARunningServer imports through the admin socket of a
// running server, which serves the image at once.
func TestImportIntoARunningServer(t *testing.T) {
	requireE2E(t)
	requireTools(t, "skopeo", "crane")
	ctx := context.Background()
	multi, cases := ociIndexImage(t)
	up := newUpstream(t)
	up.push(t, multi)
	arc := filepath.Join(t.TempDir(), "multi.tar")
	skopeoCopy(ctx, t, "docker://"+up.host+"/"+multi.ref(), "oci-archive:"+arc+":docker.io/library/imported:v1", "--all")
	cases = withTag(cases, archiveDigest(t, arc))
	up.stop()

	data := shortTempDir(t) // the admin socket's path must stay short
	srv := startPullcache(t, data, nil)
	out := pullcacheCmd(ctx, t, "import", "--data", data, arc)
	if !strings.Contains(out, "imported docker.io/library/imported:v1") {
		t.Errorf("import output %q", out)
	}
	for _, tc := range cases {
		got := craneClient{}.Pull(ctx, t, srv.addr, "library/imported:v1", tc.platform)
		if got.Manifest != tc.want.Manifest {
			t.Errorf("%s: pulled %s, want %s", tc.platform, got.Manifest, tc.want.Manifest)
		}
		if got.Tag != tc.want.Tag {
			t.Errorf("%s: tag resolved to %s, want the archive's %s", tc.platform, got.Tag, tc.want.Tag)
		}
	}
}

// podman is an isolated podman (vfs storage in a short temporary
// directory) that may pull from the plain-HTTP upstream.
type podman struct {
	env, global []string
	policy      string
}

func newPodman(t *testing.T, insecure string) *podman {
	dir := shortTempDir(t) // podman refuses a runroot longer than 50 characters
	registriesConf := fmt.Sprintf("unqualified-search-registries = []\n[[registry]]\nlocation = %q\ninsecure = true\n", insecure)
	storageConf := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "run"))
	return &podman{
		env: []string{
			"CONTAINERS_REGISTRIES_CONF=" + writeFile(t, filepath.Join(dir, "registries.conf"), registriesConf),
			"CONTAINERS_STORAGE_CONF=" + writeFile(t, filepath.Join(dir, "storage.conf"), storageConf),
			"CONTAINERS_CONF=" + writeFile(t, filepath.Join(dir, "containers.conf"), ""),
			"HOME=" + dir,
		},
		global: []string{
			"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
			"--tmpdir", filepath.Join(dir, "tmp"),
		},
		policy: writeFile(t, filepath.Join(dir, "policy.json"), insecureAcceptAnything),
	}
}

func (p *podman) run(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	return run(ctx, t, p.env, "podman", append(append([]string(nil), p.global...), args...)...)
}

// TestImportPodmanSaves imports what real `podman save` writes: a
// docker-archive by name, an oci-archive, and a save by image ID, which is
// refused until --tag names it; then serves them offline to crane.
func TestImportPodmanSaves(t *testing.T) {
	requireE2E(t)
	requireTools(t, "podman", "crane")
	ctx := context.Background()
	fx := loadFixtures(t)
	up := newUpstream(t)
	up.push(t, fx.images...)
	s2, oci := fx.images[0], fx.images[1]
	pm := newPodman(t, up.host)
	for _, im := range []*testImage{s2, oci} {
		pm.run(ctx, t, "pull", "--signature-policy", pm.policy, up.host+"/"+im.ref())
	}
	work := t.TempDir()
	legacy, ociArc, byID := filepath.Join(work, "legacy.tar"), filepath.Join(work, "oci.tar"), filepath.Join(work, "byid.tar")
	pm.run(ctx, t, "save", "--format", "docker-archive", "-o", legacy, up.host+"/"+s2.ref())
	pm.run(ctx, t, "save", "--format", "oci-archive", "-o", ociArc, up.host+"/"+oci.ref())
	id := strings.TrimSpace(pm.run(ctx, t, "images", "-q", up.host+"/"+s2.ref()))
	pm.run(ctx, t, "save", "--format", "docker-archive", "-o", byID, id)

	data := t.TempDir()
	_, combined, err := runIn(ctx, t, serverEnv(), nil, pullcacheBin, "import", "--data", data, byID)
	if err == nil || !strings.Contains(combined, "--tag") {
		t.Errorf("import of a save by image ID: err %v, output %q; want a refusal telling to pass --tag", err, combined)
	}
	pullcacheCmd(ctx, t, "import", "--data", data, "--tag", "library/byid:v1", byID)
	pullcacheCmd(ctx, t, "import", "--data", data, "--tag", "library/podman-legacy:v1", legacy)
	pullcacheCmd(ctx, t, "import", "--data", data, "--tag", "library/podman-oci:v1", ociArc)

	srv := startPullcache(t, data, nil, "--offline")
	wantCfg := upstreamConfigDigest(t, s2)
	for _, image := range []string{"library/byid:v1", "library/podman-legacy:v1"} {
		if got := configDigestVia(ctx, t, srv.addr, image); got != wantCfg {
			t.Errorf("%s: config %s, want the image ID %s", image, got, wantCfg)
		}
		craneClient{}.Pull(ctx, t, srv.addr, image, "")
	}
	got := craneClient{}.Pull(ctx, t, srv.addr, "library/podman-oci:v1", "")
	if want := archiveDigest(t, ociArc); got.Manifest != want {
		t.Errorf("podman-oci: pulled %s, want the archive's %s", got.Manifest, want)
	}
}
