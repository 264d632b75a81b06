package e2e

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testImage is an image or index the tests push to an upstream as
// library/<name>:<tag> (Docker Hub's spelling for official images).
type testImage struct {
	name  string
	tag   string
	image v1.Image      // set for a single-platform image
	index v1.ImageIndex // set for a multi-platform index
}

// ref is the repository and tag, e.g. "library/oci:v1".
func (im *testImage) ref() string { return "library/" + im.name + ":" + im.tag }

// pullCase is one pull the tests make: an image, and for an index the
// platform to pull, with the digests every client must end up with.
type pullCase struct {
	image    *testImage
	platform string // "os/arch" for an index; "" means the client's default
	want     pulled
}

func (c pullCase) String() string {
	if c.platform == "" {
		return c.image.name
	}
	return c.image.name + "/" + c.platform
}

// pulled is what a client reports after a pull.
type pulled struct {
	// Tag is the digest the tag resolved to: the index digest for a
	// multi-platform image. Empty when the client does not report it.
	Tag string
	// Manifest is the digest of the image manifest pulled for the platform.
	Manifest string
}

// hostPlatform is the platform single-platform images are built for: ctr and
// podman check an image config's os/architecture against the platform they
// pull for, which defaults to the host's.
var hostPlatform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// withPlatform sets os/architecture in img's config.
func withPlatform(img v1.Image, p v1.Platform) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = p.OS
	cf.Architecture = p.Architecture
	return mutate.ConfigFile(img, cf)
}

// schema2Image is a Docker schema 2 image (Docker media types) with layers
// gzipped random-content tars.
func schema2Image(layers int, layerSize int64, p v1.Platform) (v1.Image, error) {
	img, err := random.Image(layerSize, int64(layers))
	if err != nil {
		return nil, err
	}
	return withPlatform(img, p)
}

// ociImage is an image with an OCI manifest, OCI config and OCI layers.
func ociImage(layers int, layerSize int64, p v1.Platform) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i := 0; i < layers; i++ {
		l, err := random.Layer(layerSize, types.OCILayer)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   l,
			History: v1.History{CreatedBy: fmt.Sprintf("e2e layer %d", i)},
		})
		if err != nil {
			return nil, err
		}
	}
	return withPlatform(img, p)
}

// multiPlatformIndex is a Docker manifest list with one distinct image for
// each platform, its descriptors carrying the platform.
func multiPlatformIndex(platforms ...v1.Platform) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, p := range platforms {
		img, err := schema2Image(1, 64<<10, p)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture}},
		})
	}
	return idx, nil
}

// fixtures are the images every client pulls, and the pulls it makes.
type fixtures struct {
	images []*testImage
	cases  []pullCase
}

// standardFixtures builds, once per test binary, library/schema2:v1,
// library/oci:v1 and library/multi:v1 (linux/amd64 + linux/arm64).
var standardFixtures = sync.OnceValues(func() (*fixtures, error) {
	s2, err := schema2Image(3, 300<<10, hostPlatform)
	if err != nil {
		return nil, err
	}
	oci, err := ociImage(2, 200<<10, hostPlatform)
	if err != nil {
		return nil, err
	}
	multi, err := multiPlatformIndex(
		v1.Platform{OS: "linux", Architecture: "amd64"},
		v1.Platform{OS: "linux", Architecture: "arm64"},
	)
	if err != nil {
		return nil, err
	}
	fx := &fixtures{images: []*testImage{
		{name: "schema2", tag: "v1", image: s2},
		{name: "oci", tag: "v1", image: oci},
		{name: "multi", tag: "v1", index: multi},
	}}
	for _, im := range fx.images {
		cases, err := casesFor(im)
		if err != nil {
			return nil, err
		}
		fx.cases = append(fx.cases, cases...)
	}
	return fx, nil
})

// casesFor lists the pulls of im: one for an image, one per platform for an
// index.
func casesFor(im *testImage) ([]pullCase, error) {
	if im.image != nil {
		d, err := im.image.Digest()
		if err != nil {
			return nil, err
		}
		return []pullCase{{image: im, want: pulled{Tag: d.String(), Manifest: d.String()}}}, nil
	}
	idxDigest, err := im.index.Digest()
	if err != nil {
		return nil, err
	}
	im2, err := im.index.IndexManifest()
	if err != nil {
		return nil, err
	}
	var cases []pullCase
	for _, desc := range im2.Manifests {
		cases = append(cases, pullCase{
			image:    im,
			platform: desc.Platform.OS + "/" + desc.Platform.Architecture,
			want:     pulled{Tag: idxDigest.String(), Manifest: desc.Digest.String()},
		})
	}
	return cases, nil
}

func loadFixtures(t *testing.T) *fixtures {
	t.Helper()
	fx, err := standardFixtures()
	if err != nil {
		t.Fatalf("building test images: %v", err)
	}
	return fx
}

// checkPulled compares what a client reported with what the upstream holds.
func checkPulled(t *testing.T, c pullCase, got pulled) {
	t.Helper()
	if got.Manifest != c.want.Manifest {
		t.Errorf("%s: pulled manifest %q, want %q (upstream)", c, got.Manifest, c.want.Manifest)
	}
	if got.Tag != "" && got.Tag != c.want.Tag {
		t.Errorf("%s: tag resolved to %q, want %q (upstream)", c, got.Tag, c.want.Tag)
	}
}
