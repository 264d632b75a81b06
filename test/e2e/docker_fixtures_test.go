package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// runnable is an image the Docker tests pull and run: a one-binary program
// (testdata/hello, built static for this machine) whose output depends on
// the image's config and on a file in one of its layers.
type runnable struct {
	ref    string        // repository:tag at its upstream, e.g. "library/dockerhello:v1"
	image  v1.Image      // a single-platform image, or
	index  v1.ImageIndex // a multi-platform index
	host   v1.Image      // the index's image for this machine (image itself otherwise)
	other  v1.Image      // the index's image for another platform
	output string        // what `docker run` prints
}

// dockerImages are the images of the Docker tests.
type dockerImages struct {
	// v1 is library/dockerhello:v1, Docker schema 2, one layer.
	v1 *runnable
	// v2 is library/dockerhello:v2: v1's layer and one more.
	v2 *runnable
	// multi is library/dockermulti:v1, an OCI index of an image for this
	// machine's platform and one for another.
	multi *runnable
	// app is org/app:v1 of ghcr.io.
	app *runnable
}

// loadDockerImages builds the Docker tests' images once per test binary.
func loadDockerImages(t *testing.T) *dockerImages {
	t.Helper()
	imgs, err := dockerImagesOnce()
	if err != nil {
		t.Fatalf("building the Docker tests' images: %v", err)
	}
	return imgs
}

var dockerImagesOnce = sync.OnceValues(func() (*dockerImages, error) {
	bin, err := buildHello()
	if err != nil {
		return nil, err
	}
	hello := file{name: "hello", mode: 0o755, data: bin}
	var imgs dockerImages
	if imgs.v1, err = helloImage("library/dockerhello:v1", types.DockerLayer, []file{hello},
		[]string{"GREETING=hello"}, []string{"v1"}, "hello v1"); err != nil {
		return nil, err
	}
	if imgs.v2, err = addLayer(imgs.v1, "library/dockerhello:v2", file{name: "v2.txt", mode: 0o644, data: []byte("second layer\n")},
		[]string{"GREETING=hello", "GREETING_FILE=/v2.txt"}, []string{"v2"}, "hello second layer v2"); err != nil {
		return nil, err
	}
	if imgs.multi, err = multiRunnable("library/dockermulti:v1", hello); err != nil {
		return nil, err
	}
	imgs.app, err = helloImage("org/app:v1", types.DockerLayer,
		[]file{hello, {name: "registry.txt", mode: 0o644, data: []byte("ghcr.io\n")}},
		[]string{"GREETING=from", "GREETING_FILE=/registry.txt"}, []string{"org/app"}, "from ghcr.io org/app")
	return &imgs, err
})

// buildHello compiles testdata/hello, static, for this machine's platform.
func buildHello() ([]byte, error) {
	dir, err := os.MkdirTemp("", "pullcache-e2e-hello")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out := filepath.Join(dir, "hello")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./testdata/hello: %v\n%s", err, b)
	}
	return os.ReadFile(out)
}

// file is one regular file of a layer.
type file struct {
	name string
	mode int64
	data []byte
}

// layerOf is a gzipped tar layer of files, with media type mt.
func layerOf(mt types.MediaType, files ...file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg,
			ModTime: time.Unix(1e9, 0), Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(mt))
}

// helloImage is a one-layer image of files (Docker or OCI media types after
// the layer's), running /hello with env and cmd, for this machine.
func helloImage(ref string, mt types.MediaType, files []file, env, cmd []string, output string) (*runnable, error) {
	base := empty.Image
	if mt == types.OCILayer {
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	return appendRunnable(base, ref, mt, files, env, cmd, output)
}

// addLayer is base with one more layer and another env and cmd.
func addLayer(base *runnable, ref string, f file, env, cmd []string, output string) (*runnable, error) {
	return appendRunnable(base.image, ref, types.DockerLayer, []file{f}, env, cmd, output)
}

// appendRunnable is base with a layer of files (media type mt), running
// /hello with env and cmd, for this machine's platform.
func appendRunnable(base v1.Image, ref string, mt types.MediaType, files []file, env, cmd []string, output string) (*runnable, error) {
	l, err := layerOf(mt, files...)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "e2e: " + ref}})
	if err != nil {
		return nil, err
	}
	if img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/hello"}, Cmd: cmd, Env: env}); err != nil {
		return nil, err
	}
	if img, err = withPlatform(img, hostPlatform); err != nil {
		return nil, err
	}
	return &runnable{ref: ref, image: img, host: img, output: output}, nil
}

// multiRunnable is an OCI index of a hello image for this machine (which
// prints its platform) and a random image for another platform.
func multiRunnable(ref string, hello file) (*runnable, error) {
	platform := hostPlatform.OS + "/" + hostPlatform.Architecture
	mine, err := helloImage(ref, types.OCILayer,
		[]file{hello, {name: "platform.txt", mode: 0o644, data: []byte(platform + "\n")}},
		[]string{"GREETING=multi", "GREETING_FILE=/platform.txt"}, nil, "multi "+platform)
	if err != nil {
		return nil, err
	}
	otherPlatform := v1.Platform{OS: "linux", Architecture: "arm64"}
	if hostPlatform.Architecture == "arm64" {
		otherPlatform.Architecture = "amd64"
	}
	other, err := ociImage(1, 32<<10, otherPlatform)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &otherPlatform}},
		mutate.IndexAddendum{Add: mine.image, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: hostPlatform.OS, Architecture: hostPlatform.Architecture}}},
	)
	return &runnable{ref: ref, index: idx, host: mine.image, other: other, output: mine.output}, nil
}

// pushRunnable writes images to an upstream under their refs, then resets
// its counters.
func pushRunnable(t *testing.T, u *upstream, images ...*runnable) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, r := range images {
		u.write(ctx, t, r.ref, r.image, r.index)
	}
	u.reset()
}

// imageID is the image ID Docker gives img: its config digest.
func (r *runnable) imageID(t *testing.T) string {
	t.Helper()
	return digestOf(t, r.host.ConfigName)
}

// manifestDigest is the digest the tag resolves to.
func (r *runnable) manifestDigest(t *testing.T) string {
	t.Helper()
	if r.index != nil {
		return digestOf(t, r.index.Digest)
	}
	return digestOf(t, r.image.Digest)
}

// blobs are the digests of the config and layers of img.
func blobsOf(t *testing.T, img v1.Image) []string {
	t.Helper()
	out := []string{digestOf(t, img.ConfigName)}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		out = append(out, digestOf(t, l.Digest))
	}
	return out
}

// logRequest is one request line of pullcache's log; code is the OCI error
// code an error answer carried (its err attribute starts with it).
type logRequest struct {
	method, path, status, route, registry, cache, code string
}

// pullcacheRequests reads the request lines of a pullcache log (slog text:
// msg=request method=GET path=/v2/... status=200 ... cache=hit).
func pullcacheRequests(logs string) []logRequest {
	var out []logRequest
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, " msg=request ") {
			continue
		}
		var r logRequest
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "method":
				r.method = v
			case "path":
				r.path = v
			case "status":
				r.status = v
			case "route":
				r.route = v
			case "registry":
				r.registry = v
			case "cache":
				r.cache = v
			case "err":
				r.code, _, _ = strings.Cut(strings.TrimPrefix(v, `"`), ":")
			}
		}
		out = append(out, r)
	}
	return out
}

// countRequests counts the log's requests with this method whose path ends
// in suffix.
func countRequests(reqs []logRequest, method, suffix string) int {
	n := 0
	for _, r := range reqs {
		if r.method == method && strings.HasSuffix(r.path, suffix) {
			n++
		}
	}
	return n
}

// formatRequests renders log requests for failure messages.
func formatRequests(reqs []logRequest) string {
	lines := make([]string, len(reqs))
	for i, r := range reqs {
		lines[i] = fmt.Sprintf("  %s %s -> %s (%s, %s)", r.method, r.path, r.status, r.route, r.cache)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
