package archive_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/archive/archivetest"
)

// open opens an archive from bytes, with a private temp directory that
// must be empty again after Close (or after a failure).
func open(t *testing.T, b []byte, opts archive.Options) (*archive.Archive, error) {
	t.Helper()
	tmp := t.TempDir()
	opts.TempDir = tmp
	a, err := archive.Open(archivetest.WriteFile(t, "in.tar", b), opts)
	t.Cleanup(func() {
		if a != nil {
			a.Close()
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("temporary files left behind: %v", left)
		}
	})
	return a, err
}

func mustOpen(t *testing.T, b []byte, opts archive.Options) *archive.Archive {
	t.Helper()
	a, err := open(t, b, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return a
}

func twoLayerImage(t *testing.T, tags ...string) archivetest.LegacyImage {
	return archivetest.TwoLayerImage(t, tags...)
}

func names(img archive.Image) []string {
	var out []string
	for _, n := range img.Names {
		out = append(out, n.String())
	}
	return out
}

func readBlob(t *testing.T, b archive.Blob) []byte {
	t.Helper()
	rc, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func parseManifest(t *testing.T, m archive.Manifest) *v1.Manifest {
	t.Helper()
	mf, err := v1.ParseManifest(bytes.NewReader(m.Bytes))
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

func TestLegacySaveBuildsSchema2ManifestKeepingTheImageID(t *testing.T) {
	im := twoLayerImage(t, "alpine:3.19")
	a := mustOpen(t, archivetest.Tar(t, archivetest.LegacySave(im)...), archive.Options{})
	if len(a.Images) != 1 {
		t.Fatalf("%d images, want 1", len(a.Images))
	}
	img := a.Images[0]
	if got := names(img); len(got) != 1 || got[0] != "docker.io/library/alpine:3.19" {
		t.Errorf("names %v, want docker.io/library/alpine:3.19", got)
	}
	m := img.Manifests[0]
	if m.MediaType != string(types.DockerManifestSchema2) {
		t.Errorf("media type %s", m.MediaType)
	}
	if m.Digest != archivetest.Digest(m.Bytes) {
		t.Errorf("manifest digest %s is not the digest of its bytes", m.Digest)
	}
	mf := parseManifest(t, m)
	if want := archivetest.Digest(im.Config()); mf.Config.Digest != want {
		t.Errorf("config digest %s, want the image ID %s", mf.Config.Digest, want)
	}
	for i, l := range mf.Layers {
		if l.MediaType != types.DockerLayer {
			t.Errorf("layer %d media type %s", i, l.MediaType)
		}
	}
}

func TestLegacyLayersAreGzipOfTheSavedTar(t *testing.T) {
	im := twoLayerImage(t, "app:v1")
	a := mustOpen(t, archivetest.Tar(t, archivetest.LegacySave(im)...), archive.Options{})
	blobs := a.Images[0].Blobs
	if len(blobs) != 3 {
		t.Fatalf("%d blobs, want config and 2 layers", len(blobs))
	}
	for i, b := range blobs[1:] {
		data := readBlob(t, b)
		if archivetest.Digest(data) != b.Digest {
			t.Errorf("layer %d: bytes do not hash to %s", i, b.Digest)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("layer %d is not gzip: %v", i, err)
		}
		plain, _ := io.ReadAll(zr)
		if !bytes.Equal(plain, im.Layers[i]) {
			t.Errorf("layer %d does not decompress to the saved layer.tar", i)
		}
	}
}

func TestLegacySymlinkedLayerIsFollowedInsideTheArchive(t *testing.T) {
	l := archivetest.Layer(t, "shared")
	im := archivetest.LegacyImage{RepoTags: []string{"app:v1"}, Layers: [][]byte{l, l}, LinkLayers: map[int]int{1: 0}}
	a := mustOpen(t, archivetest.Tar(t, archivetest.LegacySave(im)...), archive.Options{})
	mf := parseManifest(t, a.Images[0].Manifests[0])
	if len(mf.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(mf.Layers))
	}
	if mf.Layers[0].Digest != mf.Layers[1].Digest {
		t.Errorf("identical layers got different digests %s, %s", mf.Layers[0].Digest, mf.Layers[1].Digest)
	}
}

func TestLegacySaveWithSeveralImagesAndTags(t *testing.T) {
	a := mustOpen(t, archivetest.Tar(t, archivetest.LegacySave(
		twoLayerImage(t, "app:v1", "app:latest"),
		archivetest.LegacyImage{RepoTags: []string{"ghcr.io/org/tool:2"}, Layers: [][]byte{archivetest.Layer(t, "tool")}},
	)...), archive.Options{})
	if len(a.Images) != 2 {
		t.Fatalf("%d images, want 2", len(a.Images))
	}
	if got := strings.Join(names(a.Images[0]), " "); got != "docker.io/library/app:v1 docker.io/library/app:latest" {
		t.Errorf("first image names %q", got)
	}
	if got := strings.Join(names(a.Images[1]), " "); got != "ghcr.io/org/tool:2" {
		t.Errorf("second image names %q", got)
	}
}

func TestTarballWriteSaveKeepsGzipLayersAsTheyAre(t *testing.T) {
	img1, _ := random.Image(300, 2)
	img2, _ := random.Image(300, 1)
	ref1, _ := name.NewTag("docker.io/library/one:1")
	ref2, _ := name.NewTag("quay.io/org/two:2")
	var buf bytes.Buffer
	if err := tarball.MultiRefWrite(map[name.Reference]v1.Image{ref1: img1, ref2: img2}, &buf); err != nil {
		t.Fatal(err)
	}
	a := mustOpen(t, buf.Bytes(), archive.Options{})
	want := map[string]v1.Image{"docker.io/library/one:1": img1, "quay.io/org/two:2": img2}
	for _, got := range a.Images {
		img := want[names(got)[0]]
		if img == nil {
			t.Fatalf("unexpected image %v", names(got))
		}
		mf := parseManifest(t, got.Manifests[0])
		cfg, _ := img.ConfigName()
		if mf.Config.Digest != cfg {
			t.Errorf("%v: config %s, want %s", names(got), mf.Config.Digest, cfg)
		}
		layers, _ := img.Layers()
		for i, l := range layers {
			d, _ := l.Digest()
			if mf.Layers[i].Digest != d {
				t.Errorf("%v: layer %d digest %s, want %s (gzip kept as is)", names(got), i, mf.Layers[i].Digest, d)
			}
		}
	}
}

func TestCompressionIsDetectedFromContent(t *testing.T) {
	im := twoLayerImage(t, "app:v1")
	plain := archivetest.Tar(t, archivetest.LegacySave(im)...)
	for _, how := range []string{"none", "gzip", "xz", "zstd"} {
		t.Run(how, func(t *testing.T) {
			a := mustOpen(t, archivetest.Compress(t, plain, how), archive.Options{})
			mf := parseManifest(t, a.Images[0].Manifests[0])
			if want := archivetest.Digest(im.Config()); mf.Config.Digest != want {
				t.Errorf("config %s, want %s", mf.Config.Digest, want)
			}
		})
	}
}

// testdata/legacy.tar.bz2 was made with the bzip2 command from a hand-made
// legacy save of docker.io/library/bz:1 (Go has no bzip2 writer).
func TestBzip2Archive(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "legacy.tar.bz2"))
	if err != nil {
		t.Fatal(err)
	}
	if c := archive.Sniff(b); c != archive.Bzip2 {
		t.Fatalf("fixture sniffed as %s", c)
	}
	a := mustOpen(t, b, archive.Options{})
	if got := names(a.Images[0]); len(got) != 1 || got[0] != "docker.io/library/bz:1" {
		t.Errorf("names %v", got)
	}
}

func TestImageIDOnlySaveNeedsTag(t *testing.T) {
	save := archivetest.Tar(t, archivetest.LegacySave(twoLayerImage(t))...)
	_, err := open(t, save, archive.Options{})
	if !errors.Is(err, archive.ErrNoName) {
		t.Fatalf("err = %v, want ErrNoName", err)
	}
	if !strings.Contains(err.Error(), "--tag") {
		t.Errorf("message %q does not tell the user to pass --tag", err)
	}
}

func TestTagNamesAnImageIDOnlySave(t *testing.T) {
	save := archivetest.Tar(t, archivetest.LegacySave(twoLayerImage(t))...)
	a := mustOpen(t, save, archive.Options{Tags: []string{"mine:1"}, DefaultRegistry: "registry.lan:5000"})
	if got := names(a.Images[0]); len(got) != 1 || got[0] != "registry.lan:5000/mine:1" {
		t.Errorf("names %v", got)
	}
}

func TestTagRefusedForSeveralImages(t *testing.T) {
	save := archivetest.Tar(t, archivetest.LegacySave(twoLayerImage(t, "a:1"), twoLayerImage(t, "b:1"))...)
	if _, err := open(t, save, archive.Options{Tags: []string{"x:1"}}); err == nil {
		t.Fatal("--tag accepted for an archive of two images")
	}
}

func TestOCILayoutDirectoryKeepsManifestsByteExact(t *testing.T) {
	dir, digests := archivetest.OCILayoutDir(t, "docker.io/library/app:v1", "ghcr.io/org/multi:v2")
	a, err := archive.Open(dir, archive.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if len(a.Images) != 2 {
		t.Fatalf("%d images, want 2", len(a.Images))
	}
	for i, img := range a.Images {
		if img.Manifests[0].Digest != digests[i] {
			t.Errorf("image %d: digest %s, want %s", i, img.Manifests[0].Digest, digests[i])
		}
		onDisk, _ := os.ReadFile(filepath.Join(dir, "blobs", "sha256", digests[i].Hex))
		if !bytes.Equal(img.Manifests[0].Bytes, onDisk) {
			t.Errorf("image %d: manifest bytes differ from the layout's", i)
		}
	}
	if got := names(a.Images[1]); len(got) != 1 || got[0] != "ghcr.io/org/multi:v2" {
		t.Errorf("index names %v", got)
	}
	if n := len(a.Images[1].Manifests); n != 3 {
		t.Errorf("index image has %d manifests, want the index and 2 children", n)
	}
}

func TestOCIArchiveWithBareTagNeedsTag(t *testing.T) {
	dir, digests := archivetest.OCILayoutDir(t, "v1", "")
	arc := archivetest.Tar(t, archivetest.TarDir(t, dir)...)
	if _, err := open(t, arc, archive.Options{}); !errors.Is(err, archive.ErrNoName) {
		t.Fatalf("err = %v, want ErrNoName", err)
	}
	a := mustOpen(t, arc, archive.Options{Tags: []string{"app:v1"}})
	if a.Images[0].Manifests[0].Digest != digests[0] {
		t.Errorf("digest changed: %s, want %s", a.Images[0].Manifests[0].Digest, digests[0])
	}
}

func TestDockerOCISaveIsReadAsOCI(t *testing.T) {
	entries, digest := archivetest.DockerOCISave(t, "docker.io/library/new:25")
	a := mustOpen(t, archivetest.Compress(t, archivetest.Tar(t, entries...), "gzip"), archive.Options{})
	if a.Images[0].Manifests[0].Digest != digest {
		t.Errorf("digest %s, want %s", a.Images[0].Manifests[0].Digest, digest)
	}
	if got := names(a.Images[0]); len(got) == 0 || got[0] != "docker.io/library/new:25" {
		t.Errorf("names %v", got)
	}
}

// Malicious and broken archives: each is refused with an error of the
// right kind naming the entry.
func TestBadArchivesAreRefusedNamingTheEntry(t *testing.T) {
	for _, c := range archivetest.BadArchives(t) {
		t.Run(c.Name, func(t *testing.T) {
			_, err := open(t, c.Archive, archive.Options{})
			if !errors.Is(err, c.Kind) {
				t.Fatalf("err = %v, want %v", err, c.Kind)
			}
			if !strings.Contains(err.Error(), c.Names) {
				t.Errorf("error %q does not name %q", err, c.Names)
			}
		})
	}
}

func TestUnpackedSizeIsBounded(t *testing.T) {
	save := archivetest.Tar(t, archivetest.LegacySave(twoLayerImage(t, "app:v1"))...)
	_, err := open(t, archivetest.Compress(t, save, "gzip"), archive.Options{MaxUnpacked: 1024})
	if !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), "limit") {
		t.Errorf("message %q does not mention the limit", err)
	}
}

func TestProgressCountsVerifiedBytes(t *testing.T) {
	for _, kind := range []string{"legacy", "oci"} {
		t.Run(kind, func(t *testing.T) {
			var b []byte
			if kind == "legacy" {
				b = archivetest.Tar(t, archivetest.LegacySave(archivetest.TwoLayerImage(t, "app:v1"))...)
			} else {
				entries, _ := archivetest.DockerOCISave(t, "app:v1")
				b = archivetest.Tar(t, entries...)
			}
			var calls, last, total int64
			opts := archive.Options{TempDir: t.TempDir(), Progress: func(done, tot int64) {
				if done < last {
					t.Errorf("progress went back from %d to %d", last, done)
				}
				calls++
				last, total = done, tot
			}}
			a, err := archive.Read(bytes.NewReader(b), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if calls == 0 {
				t.Fatal("no progress reported")
			}
			if last > total {
				t.Errorf("verified %d of %d", last, total)
			}
			if total == 0 {
				t.Error("total unknown")
			}
		})
	}
}
