package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// client is one real registry client driven from the command line.
type client interface {
	// Name names the client in test names and messages.
	Name() string
	// Tools lists the binaries it runs.
	Tools() []string
	// Pull pulls image (e.g. "library/oci:v1", a Docker Hub name) through the
	// mirror at host:port into fresh client state, for platform ("os/arch",
	// or "" for the client's default), and reports the digests it recorded.
	// It fails t if the pull fails.
	Pull(ctx context.Context, t *testing.T, mirror, image, platform string) pulled
}

// allClients are the clients every pull test runs with.
func allClients() []client {
	return []client{skopeoClient{}, craneClient{}, regctlClient{}, podmanClient{}, containerdClient{}}
}

// splitPlatform splits "os/arch".
func splitPlatform(t *testing.T, platform string) (os, arch string) {
	t.Helper()
	os, arch, ok := strings.Cut(platform, "/")
	if !ok {
		t.Fatalf("bad platform %q", platform)
	}
	return os, arch
}

// insecureAcceptAnything is a containers-policy.json(5) accepting every image;
// skopeo and podman need a policy and must not read the host's.
const insecureAcceptAnything = `{"default":[{"type":"insecureAcceptAnything"}]}`

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ociLayoutManifest returns the digest of the manifest an OCI image layout's
// index.json records for tag (by its org.opencontainers.image.ref.name
// annotation), or of its only manifest when none is annotated.
func ociLayoutManifest(t *testing.T, dir, tag string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatalf("reading the OCI layout the client wrote: %v", err)
	}
	var index struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatalf("%s/index.json: %v", dir, err)
	}
	for _, m := range index.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == tag {
			return m.Digest
		}
	}
	if len(index.Manifests) == 1 {
		return index.Manifests[0].Digest
	}
	t.Fatalf("%s/index.json: no manifest for tag %q:\n%s", dir, tag, data)
	return ""
}

// shortTempDir is a new directory directly under the system's temporary
// directory, for paths with length limits (unix sockets, podman's runroot);
// t.TempDir's names embed the test name. It is removed when t ends.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// tagOf returns the tag of an image reference like "library/oci:v1".
func tagOf(image string) string {
	return image[strings.LastIndex(image, ":")+1:]
}

// sha256Digest is the OCI digest of data.
func sha256Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// skopeoClient copies into a dir: directory with skopeo copy. Not an oci:
// layout: skopeo converts a Docker schema 2 manifest to OCI when writing one,
// which changes its digest; dir: keeps the manifest's bytes.
type skopeoClient struct{}

func (skopeoClient) Name() string    { return "skopeo" }
func (skopeoClient) Tools() []string { return []string{"skopeo"} }

func (c skopeoClient) Pull(ctx context.Context, t *testing.T, mirror, image, platform string) pulled {
	t.Helper()
	dir := t.TempDir()
	env, args := c.command(t, dir, mirror, image, platform)
	run(ctx, t, env, "skopeo", args...)
	return pulled{Manifest: c.pulledManifest(t, dir, image)}
}

// command returns the environment and arguments of a skopeo copy of image
// into dir/out, using dir for its configuration.
func (skopeoClient) command(t *testing.T, dir, mirror, image, platform string) (env, args []string) {
	t.Helper()
	args = []string{
		"--policy", writeFile(t, filepath.Join(dir, "policy.json"), insecureAcceptAnything),
		"--tmpdir", dir,
	}
	if platform != "" {
		os, arch := splitPlatform(t, platform)
		args = append(args, "--override-os", os, "--override-arch", arch)
	}
	args = append(args, "copy", "--src-tls-verify=false",
		"docker://"+mirror+"/"+image, "dir:"+filepath.Join(dir, "out"))
	// An empty registries.conf keeps the host's mirrors and aliases out.
	env = []string{"CONTAINERS_REGISTRIES_CONF=" + writeFile(t, filepath.Join(dir, "registries.conf"), "")}
	return env, args
}

// pulledManifest is the digest of the manifest skopeo wrote to dir/out.
func (skopeoClient) pulledManifest(t *testing.T, dir, image string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "out", "manifest.json"))
	if err != nil {
		t.Fatalf("reading the manifest skopeo wrote: %v", err)
	}
	return sha256Digest(data)
}

// craneClient pulls into an OCI layout with crane pull, and resolves the tag
// with crane digest.
type craneClient struct{}

func (craneClient) Name() string    { return "crane" }
func (craneClient) Tools() []string { return []string{"crane"} }

func (c craneClient) Pull(ctx context.Context, t *testing.T, mirror, image, platform string) pulled {
	t.Helper()
	dir := t.TempDir()
	env, args := c.command(t, dir, mirror, image, platform)
	run(ctx, t, env, "crane", args...)
	tag := strings.TrimSpace(run(ctx, t, env, "crane", "digest", "--insecure", mirror+"/"+image))
	return pulled{Tag: tag, Manifest: c.pulledManifest(t, dir, image)}
}

// pulledManifest is the digest of the manifest crane wrote to dir/oci.
func (craneClient) pulledManifest(t *testing.T, dir, image string) string {
	t.Helper()
	return ociLayoutManifest(t, filepath.Join(dir, "oci"), tagOf(image))
}

// command returns the environment and arguments of a crane pull of image
// into the OCI layout dir/oci, using dir for its configuration.
func (craneClient) command(t *testing.T, dir, mirror, image, platform string) (env, args []string) {
	t.Helper()
	// Isolated HOME and DOCKER_CONFIG: no credentials or config of the host.
	env = []string{"HOME=" + dir, "DOCKER_CONFIG=" + filepath.Join(dir, ".docker")}
	args = []string{"pull", "--insecure", "--format", "oci"}
	if platform != "" {
		args = append(args, "--platform", platform)
	}
	return env, append(args, mirror+"/"+image, filepath.Join(dir, "oci"))
}

// regctlClient copies into an OCI layout with regctl image copy, and
// resolves the tag with regctl image digest.
type regctlClient struct{}

func (regctlClient) Name() string    { return "regctl" }
func (regctlClient) Tools() []string { return []string{"regctl"} }

func (regctlClient) Pull(ctx context.Context, t *testing.T, mirror, image, platform string) pulled {
	t.Helper()
	dir := t.TempDir()
	env := []string{
		"HOME=" + dir,
		"REGCTL_CONFIG=" + filepath.Join(dir, "regctl.json"),
		"DOCKER_CONFIG=" + filepath.Join(dir, ".docker"),
	}
	run(ctx, t, env, "regctl", "registry", "set", "--tls", "disabled", mirror)
	ref := mirror + "/" + image
	out := filepath.Join(dir, "oci")
	args := []string{"image", "copy"}
	if platform != "" {
		args = append(args, "--platform", platform)
	}
	run(ctx, t, env, "regctl", append(args, ref, "ocidir://"+out+":"+tagOf(image))...)
	tag := strings.TrimSpace(run(ctx, t, env, "regctl", "image", "digest", ref))
	return pulled{Tag: tag, Manifest: ociLayoutManifest(t, out, tagOf(image))}
}

// podmanClient pulls docker.io/<image> into a throwaway vfs store, with the
// mirror configured for docker.io in registries.conf.
type podmanClient struct{}

func (podmanClient) Name() string    { return "podman" }
func (podmanClient) Tools() []string { return []string{"podman"} }

func (podmanClient) Pull(ctx context.Context, t *testing.T, mirror, image, platform string) pulled {
	t.Helper()
	dir := shortTempDir(t) // podman refuses a runroot longer than 50 characters
	registriesConf := fmt.Sprintf(`unqualified-search-registries = []
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = %q
insecure = true
`, mirror)
	storageConf := fmt.Sprintf(`[storage]
driver = "vfs"
graphroot = %q
runroot = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "run"))
	env := []string{
		"CONTAINERS_REGISTRIES_CONF=" + writeFile(t, filepath.Join(dir, "registries.conf"), registriesConf),
		"CONTAINERS_STORAGE_CONF=" + writeFile(t, filepath.Join(dir, "storage.conf"), storageConf),
		"CONTAINERS_CONF=" + writeFile(t, filepath.Join(dir, "containers.conf"), ""),
		"HOME=" + dir,
	}
	policy := writeFile(t, filepath.Join(dir, "policy.json"), insecureAcceptAnything)
	global := podmanGlobalFlags(dir)
	ref := "docker.io/" + image
	args := append(append([]string(nil), global...), "pull", "--signature-policy", policy)
	if platform != "" {
		os, arch := splitPlatform(t, platform)
		args = append(args, "--os", os, "--arch", arch)
	}
	run(ctx, t, env, "podman", append(args, ref)...)
	out := run(ctx, t, env, "podman", append(append([]string(nil), global...),
		"image", "inspect", ref)...)
	return podmanPulled(t, out)
}

// podmanPulled reads `podman image inspect` (a JSON array). Digest is
// the digest the tag resolved to (the index's, for an index) and RepoDigests
// names the index and the platform's manifest (only the manifest, for a
// single-platform image).
// podmanGlobalFlags keep podman's storage and state under dir and let it
// pull as root on this machine without systemd or a daemon.
func podmanGlobalFlags(dir string) []string {
	return []string{
		"--root", filepath.Join(dir, "root"),
		"--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
		"--tmpdir", filepath.Join(dir, "tmp"),
	}
}

func podmanPulled(t *testing.T, inspect string) pulled {
	t.Helper()
	var imgs []struct {
		Digest      string
		RepoDigests []string
	}
	if err := json.Unmarshal([]byte(inspect), &imgs); err != nil {
		t.Fatalf("podman image inspect: %v\n%s", err, inspect)
	}
	if len(imgs) != 1 {
		t.Fatalf("podman image inspect: %d images, want 1\n%s", len(imgs), inspect)
	}
	img := imgs[0]
	p := pulled{Tag: img.Digest, Manifest: img.Digest}
	for _, rd := range img.RepoDigests {
		_, d, ok := strings.Cut(rd, "@")
		if !ok {
			t.Fatalf("podman image inspect: bad RepoDigests entry %q", rd)
		}
		if d != img.Digest {
			p.Manifest = d
		}
	}
	t.Logf("podman: Digest %s, RepoDigests %v", img.Digest, img.RepoDigests)
	return p
}
