// Package archive opens image archives carried in from elsewhere and yields
// their images, verified, ready to be stored: `docker save` tarballs (the
// legacy layout and Docker 25+'s OCI layout inside the tar), OCI image
// layout directories and oci-archive tarballs, plain or gzip, bzip2, xz or
// zstd compressed (recognised from content, not the file name).
//
// Open checks everything before it returns: every entry name and link
// (nothing leaves the archive, no absolute path, no device file), every
// OCI blob against its descriptor's size and digest, every legacy layer
// against the config's diff_ids. A caller that stores the result therefore
// never stores part of a bad archive.
//
// Legacy saves carry no registry manifest. Open builds a Docker schema 2
// manifest for them, keeping the config bytes (so the image ID, the
// config digest, is the one `docker images` showed) and gzip-compressing
// every uncompressed layer.tar, as `docker push` would: every client can
// pull gzip layers, while uncompressed layer media types are not accepted
// everywhere. Layers already gzip-compressed are kept as they are. The
// layer digests therefore differ from the ones a registry serves for the
// same image; the config digest does not. OCI layouts keep their manifests
// and indexes byte for byte: their digests do not change.
//
// An OCI layout may also hold referrers (signatures, SBOMs) of its images;
// they are read as Referrers, not as images (see Referrer).
//
// Archives are unpacked into a private temporary directory (links become
// hard links there, never symlinks), so importing needs free space for the
// uncompressed archive; Close removes it.
//
// The package knows nothing of the cache or of HTTP.
package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNoName says an image in the archive has no repository:tag (a save made
// by image ID) and no --tag was given.
var ErrNoName = errors.New("image has no name")

// ErrBadName says a name given or found is not a valid image reference, or
// --tag was given for an archive of several images.
var ErrBadName = errors.New("bad image name")

// Options configure Open.
type Options struct {
	// DefaultRegistry is the registry of names that carry none. Default
	// "docker.io".
	DefaultRegistry string
	// Tags, when set, name the archive's only image instead of the names
	// it carries (NAME:TAG; NAME alone means :latest). Default: none.
	Tags []string
	// TempDir is where the archive is unpacked. Default os.TempDir().
	TempDir string
	// MaxUnpacked bounds the bytes an archive may unpack to (a compressed
	// upload can expand a thousandfold). Default 0: no limit.
	MaxUnpacked int64
	// Progress, when set, is called as the unpacked files are verified
	// (hashed), with the bytes verified so far and the bytes unpacked.
	// Default: none.
	Progress func(done, total int64)
}

// Name is where an image is stored: registry, repository and tag.
type Name struct {
	Registry   string
	Repository string
	Tag        string
}

func (n Name) String() string { return n.Registry + "/" + n.Repository + ":" + n.Tag }

// Manifest is a manifest or index exactly as it is to be served.
type Manifest struct {
	Digest    v1.Hash
	MediaType string
	Bytes     []byte
}

// Blob is a verified config or layer blob, readable until the Archive is
// closed.
type Blob struct {
	Digest v1.Hash
	Size   int64
	path   string
}

// Open opens the blob's bytes.
func (b Blob) Open() (io.ReadCloser, error) { return os.Open(b.path) }

// Image is one image of an archive.
type Image struct {
	// Names are where it is to be stored; never empty.
	Names []Name
	// Manifests are the top manifest first (an index or an image manifest),
	// then, for an index, every manifest below it.
	Manifests []Manifest
	// Blobs are every config and layer the manifests reference.
	Blobs []Blob
	// refs are the references the archive gives, resolved into Names.
	refs []string
}

// Archive is an opened, verified archive.
type Archive struct {
	Images []Image
	// Referrers are the manifests of an OCI layout that refer to a subject
	// (signatures, SBOMs); a legacy save has none.
	Referrers []Referrer
	// History is the tag history file a pullcache export carries
	// (HistoryFile), if any; pullcache reads it, other tools ignore it.
	History []byte
	tmp     string
}

// HistoryFile is the entry of an exported bundle holding the tag history
// of its images.
const HistoryFile = "pullcache-history.json"

// Close removes the unpacked files.
func (a *Archive) Close() error {
	if a.tmp == "" {
		return nil
	}
	return os.RemoveAll(a.tmp)
}

// Open opens the archive or OCI layout directory at path and verifies all
// of it. The error names the offending entry.
func Open(path string, opts Options) (*Archive, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return Read(f, opts)
	}
	return withTemp(opts, func(tmp string) (*tree, error) { return scanDir(path) })
}

// Read unpacks and verifies an archive read from r (an upload).
func Read(r io.Reader, opts Options) (*Archive, error) {
	return withTemp(opts, func(tmp string) (*tree, error) {
		return unpack(r, filepath.Join(tmp, "x"), opts.MaxUnpacked)
	})
}

// withTemp makes the private temporary directory, gets the tree and builds
// the archive, removing the directory if anything fails.
func withTemp(opts Options, load func(tmp string) (*tree, error)) (*Archive, error) {
	tmp, err := os.MkdirTemp(opts.TempDir, "pullcache-import-*")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	t, err := load(tmp)
	if err == nil {
		t.meter = &meter{total: t.unpacked, report: opts.Progress}
		var a *Archive
		if a, err = build(t, tmp, opts); err == nil {
			return a, nil
		}
	}
	os.RemoveAll(tmp)
	return nil, err
}

// build reads the images of an unpacked tree: an OCI layout when there is
// one (exact manifests, even in a Docker 25+ save), else a legacy save.
func build(t *tree, tmp string, opts Options) (*Archive, error) {
	a := &Archive{tmp: tmp}
	var err error
	switch {
	case t.has("oci-layout") && t.has("index.json"):
		a.Images, a.Referrers, err = readOCI(t, tmp)
	case t.has("manifest.json"):
		a.Images, err = readLegacy(t, tmp)
	default:
		err = fmt.Errorf("%w: neither an OCI layout (oci-layout, index.json) nor a docker save (manifest.json)", ErrCorrupt)
	}
	if err != nil {
		return nil, err
	}
	if err := nameImages(a.Images, opts); err != nil {
		return nil, err
	}
	if t.has(HistoryFile) {
		a.History, _ = t.readFile(HistoryFile)
	}
	return a, nil
}

// nameImages resolves each image's references into Names, or applies
// Options.Tags.
func nameImages(images []Image, opts Options) error {
	if len(images) == 0 {
		return fmt.Errorf("%w: the archive holds no image", ErrCorrupt)
	}
	if len(opts.Tags) > 0 && len(images) != 1 {
		return fmt.Errorf("%w: --tag names one image, but the archive holds %d", ErrBadName, len(images))
	}
	reg := opts.DefaultRegistry
	if reg == "" {
		reg = "docker.io"
	}
	for i := range images {
		raw := images[i].refs
		if len(opts.Tags) > 0 {
			raw = opts.Tags
		}
		names, err := parseNames(raw, reg)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			return fmt.Errorf("%w: image %s has no repository:tag (saved by image ID?); pass --tag NAME:TAG",
				ErrNoName, images[i].Manifests[0].Digest)
		}
		images[i].Names = names
	}
	return nil
}

// parseNames parses references such as "alpine:3.19", "ghcr.io/org/app:v1"
// or "docker.io/library/alpine:latest"; Docker Hub's one-component names
// get library/. References by digest only, or bare tags, are skipped.
func parseNames(raw []string, registry string) ([]Name, error) {
	var out []Name
	for _, s := range raw {
		if s == "" || strings.Contains(s, "@") || !looksLikeName(s) {
			continue
		}
		n, err := ParseName(s, registry)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseName parses an image reference such as "alpine:3.19",
// "ghcr.io/org/app" or "docker.io/library/alpine:latest": a name without a
// registry is in registry (default "docker.io"), a Docker Hub one-component
// name gets library/, a missing tag is latest.
func ParseName(s, registry string) (Name, error) {
	if registry == "" {
		registry = "docker.io"
	}
	tag, err := name.NewTag(s, name.WithDefaultRegistry(registry))
	if err != nil {
		return Name{}, fmt.Errorf("%w: %q: %v", ErrBadName, s, err)
	}
	reg := tag.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return Name{Registry: reg, Repository: tag.RepositoryStr(), Tag: tag.TagStr()}, nil
}

// looksLikeName tells a full reference ("app:v1", "org/app") from a bare
// tag such as the "v1" skopeo writes as org.opencontainers.image.ref.name:
// a bare tag has neither '/' nor ':'. "latest" alone is ambiguous and is
// taken as a tag.
func looksLikeName(s string) bool { return strings.ContainsAny(s, "/:") }
