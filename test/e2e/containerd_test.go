package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// containerdClient pulls docker.io/<image> with `ctr images pull` through a
// containerd of its own, the mirror configured for docker.io in a hosts.toml.
type containerdClient struct{}

func (containerdClient) Name() string    { return "containerd" }
func (containerdClient) Tools() []string { return []string{"containerd", "ctr"} }

func (containerdClient) Pull(ctx context.Context, t *testing.T, mirror, image, platform string) pulled {
	t.Helper()
	d := startContainerd(ctx, t)
	hostsDir := filepath.Join(d.dir, "certs.d")
	writeFile(t, filepath.Join(hostsDir, "docker.io", "hosts.toml"), fmt.Sprintf(`server = "https://registry-1.docker.io"
[host."http://%s"]
  capabilities = ["pull", "resolve"]
`, mirror))

	ref := "docker.io/" + image
	// The default snapshotter (overlayfs) unpacks fine on these machines;
	// where the kernel refuses overlay mounts, add "--snapshotter", "native".
	args := []string{"images", "pull", "--hosts-dir", hostsDir}
	if platform != "" {
		args = append(args, "--platform", platform)
	}
	d.ctr(ctx, t, append(args, ref)...)

	mediaType, target := d.imageTarget(ctx, t, ref)
	manifest := target
	if strings.Contains(mediaType, "manifest.list") || strings.Contains(mediaType, "image.index") {
		if platform == "" {
			platform = hostPlatform.OS + "/" + hostPlatform.Architecture
		}
		manifest = d.platformManifest(ctx, t, target, platform)
	}
	return pulled{Tag: target, Manifest: manifest}
}

// containerd is a running containerd daemon with its own root, state and
// socket under a short directory (unix socket paths are limited to ~108 bytes).
type containerd struct {
	dir  string
	sock string
}

// ctrReadyTimeout bounds how long containerd may take to answer `ctr version`.
const ctrReadyTimeout = 30 * time.Second

func startContainerd(ctx context.Context, t *testing.T) *containerd {
	t.Helper()
	dir := shortTempDir(t)
	d := &containerd{dir: dir, sock: filepath.Join(dir, "c.sock")}
	config := writeFile(t, filepath.Join(dir, "config.toml"), fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.sock, d.sock+".ttrpc", filepath.Join(dir, "opt")))

	logs := &syncBuffer{}
	cmd := exec.Command("containerd", "--config", config)
	// Its stack dumps (on SIGUSR1) go to TMPDIR: the test's own directory.
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	cmd.Stdout = logs
	cmd.Stderr = logs
	t.Logf("$ containerd --config %s", config)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stopContainerd(t, cmd, exited)
		if t.Failed() {
			t.Logf("containerd log:\n%s", logs.String())
		}
	})

	// Probe with `ctr version` on a ticker until it answers, containerd exits
	// or the deadline passes.
	deadline := time.NewTimer(ctrReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	var lastOut string
	for attempt := 1; ; attempt++ {
		probeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := exec.CommandContext(probeCtx, "ctr", "--address", d.sock, "version").CombinedOutput()
		cancel()
		if err == nil {
			t.Logf("containerd ready after %d probe(s)", attempt)
			return d
		}
		lastErr, lastOut = err, string(out)
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("containerd exited before it was ready: %v\n%s", err, logs.String())
		case <-deadline.C:
			t.Fatalf("containerd did not answer `ctr version` within %s (%d probes): %v\n%s", ctrReadyTimeout, attempt, lastErr, lastOut)
		case <-tick.C:
		}
	}
}

// stopContainerd sends SIGTERM and waits; it kills containerd if it lingers.
func stopContainerd(t *testing.T, cmd *exec.Cmd, exited chan error) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-exited
		t.Errorf("containerd did not exit within %s of SIGTERM; killed", stopTimeout)
	}
}

func (d *containerd) ctr(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	return run(ctx, t, nil, "ctr", append([]string{"--address", d.sock}, args...)...)
}

// imageTarget returns the media type and digest of the image named ref, from
// `ctr images ls` (columns REF TYPE DIGEST SIZE PLATFORMS LABELS).
func (d *containerd) imageTarget(ctx context.Context, t *testing.T, ref string) (mediaType, digest string) {
	t.Helper()
	out := d.ctr(ctx, t, "images", "ls")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == ref {
			return f[1], f[2]
		}
	}
	t.Fatalf("ctr images ls does not list %s:\n%s", ref, out)
	return "", ""
}

// platformManifest reads the index with digest index from the content store
// and returns the digest of its manifest for platform, after checking that
// manifest is in the content store with the right bytes.
func (d *containerd) platformManifest(ctx context.Context, t *testing.T, index, platform string) string {
	t.Helper()
	raw := d.ctr(ctx, t, "content", "get", index)
	if got := sha256Digest([]byte(raw)); got != index {
		t.Fatalf("content store: index %s has digest %s", index, got)
	}
	var idx struct {
		Manifests []struct {
			Digest   string `json:"digest"`
			Platform struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(raw), &idx); err != nil {
		t.Fatalf("index %s: %v", index, err)
	}
	for _, m := range idx.Manifests {
		if m.Platform.OS+"/"+m.Platform.Architecture != platform {
			continue
		}
		child := d.ctr(ctx, t, "content", "get", m.Digest)
		if got := sha256Digest([]byte(child)); got != m.Digest {
			t.Fatalf("content store: manifest %s has digest %s", m.Digest, got)
		}
		return m.Digest
	}
	t.Fatalf("index %s has no manifest for %s:\n%s", index, platform, raw)
	return ""
}
