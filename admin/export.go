package admin

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/cache"
)

// ErrIncomplete says an image cannot be exported because part of it is not
// cached (typically the platforms of an index nobody pulled).
var ErrIncomplete = errors.New("image not completely cached")

// exportEpoch is the modification time of every entry, so that the same
// images always make the same bundle.
var exportEpoch = time.Unix(0, 0).UTC()

// bundle is what an export writes: index.json's entries and every blob
// (manifests included) they reach.
type bundle struct {
	entries []v1.Descriptor
	blobs   map[v1.Hash]int64
	order   []v1.Hash
	// referrers are the referrer entries added, once each.
	referrers map[v1.Hash]bool
	// history is the tag history of the images, by name.
	history map[string][]cache.HistoryEntry
	// saves are manifest.json's entries (see addSaveEntry).
	saves []saveEntry
}

func newBundle() *bundle {
	return &bundle{blobs: map[v1.Hash]int64{}, referrers: map[v1.Hash]bool{}, history: map[string][]cache.HistoryEntry{}}
}

func (b *bundle) addBlob(h v1.Hash, size int64) {
	if _, ok := b.blobs[h]; !ok {
		b.blobs[h] = size
		b.order = append(b.order, h)
	}
}

// ExportOptions choose what Export writes.
type ExportOptions struct {
	// Names are the images to export; with All, every tag in the store.
	Names []archive.Name
	All   bool
	// Platform, when set, exports only that platform of an index (its image
	// manifest). Default: all platforms, the index byte for byte.
	Platform *v1.Platform
}

// ExportResult lists what an export wrote and, with All, what it skipped.
type ExportResult struct {
	Exported []string `json:"exported"`
	Skipped  []string `json:"skipped,omitempty"`
}

// Export writes the chosen images as an OCI image layout in a tar: an
// oci-layout file, index.json with one entry per image (annotated with its
// full name, which `pullcache import` reads and skopeo's
// oci-archive:FILE:NAME selects) and blobs/sha256/ with the exact manifest
// bytes, configs and layers; and, as Docker 25+ saves do, docker save's
// manifest.json over the same blobs, so that `docker load` reads it too. Every image is resolved before the first byte
// is written; an image named explicitly that is not completely cached is an
// error, and with All it is skipped and reported.
func Export(store *cache.Store, opts ExportOptions, w io.Writer) (ExportResult, error) {
	plan, res, err := PlanExport(store, opts)
	if err != nil {
		return res, err
	}
	return res, plan.Write(store, w)
}

// ExportPlan is a resolved export, ready to be written.
type ExportPlan struct{ b *bundle }

// PlanExport resolves the images of an export and checks they are cached,
// without writing anything.
func PlanExport(store *cache.Store, opts ExportOptions) (*ExportPlan, ExportResult, error) {
	names := opts.Names
	if opts.All {
		var err error
		if names, err = allNames(store); err != nil {
			return nil, ExportResult{}, err
		}
	}
	b := newBundle()
	var res ExportResult
	for _, n := range names {
		missing, err := b.addImage(store, n, opts.Platform)
		if opts.All && errors.Is(err, ErrIncomplete) {
			res.Skipped = append(res.Skipped, err.Error())
			continue
		}
		if err != nil {
			return nil, res, err
		}
		res.Exported = append(res.Exported, n.String())
		res.Skipped = append(res.Skipped, missing...)
	}
	if len(res.Exported) == 0 {
		return nil, res, errors.New("nothing to export")
	}
	return &ExportPlan{b: b}, res, nil
}

// Write writes the tar.
func (p *ExportPlan) Write(store *cache.Store, w io.Writer) error { return p.b.write(store, w) }

func allNames(store *cache.Store) ([]archive.Name, error) {
	var out []archive.Name
	err := store.Tags(func(r cache.Repo, tag string, _ cache.Tag) error {
		out = append(out, archive.Name{Registry: r.Registry, Repository: r.Name, Tag: tag})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, err
}

// addImage adds an image and the referrers the cache knows of its
// manifests; it returns what it could not add of those referrers.
func (b *bundle) addImage(store *cache.Store, n archive.Name, p *v1.Platform) ([]string, error) {
	t, err := store.Tag(repoOf(n), n.Tag)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n, err)
	}
	m, err := store.Manifest(t.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: manifest %s: %w", n, t.Digest, err)
	}
	if m.IsIndex() && p != nil {
		if m, err = platformChild(store, n, m, p); err != nil {
			return nil, err
		}
	}
	if err := b.addManifest(store, n, m, 0); err != nil {
		return nil, err
	}
	ref := n.String()
	if hist, err := store.History(repoOf(n), n.Tag); err == nil {
		b.history[ref] = hist
	}
	b.entries = append(b.entries, v1.Descriptor{
		MediaType: types.MediaType(m.MediaType), Size: int64(len(m.Bytes)), Digest: m.Digest,
		Annotations: map[string]string{"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": ref},
	})
	b.addSaveEntry(store, n, m)
	subjects := []v1.Hash{m.Digest}
	if m.IsIndex() {
		subjects = append(subjects, refDigests(m)...)
	}
	return b.addReferrers(store, n, subjects, 0), nil
}

// platformChild picks the image of an index for platform p.
func platformChild(store *cache.Store, n archive.Name, idx *cache.Manifest, p *v1.Platform) (*cache.Manifest, error) {
	for _, d := range idx.Refs {
		if d.Platform != nil && d.Platform.Satisfies(*p) {
			m, err := store.Manifest(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: platform %s (%s) is not cached", ErrIncomplete, n, p, d.Digest)
			}
			return m, nil
		}
	}
	return nil, fmt.Errorf("%s: the index has no platform %s", n, p)
}

// addManifest adds a manifest and, recursively, everything it references,
// checking each is in the store.
func (b *bundle) addManifest(store *cache.Store, n archive.Name, m *cache.Manifest, depth int) error {
	if depth > 4 {
		return fmt.Errorf("%s: indexes nested too deep", n)
	}
	b.addBlob(m.Digest, int64(len(m.Bytes)))
	for _, d := range m.Refs {
		if !m.IsIndex() {
			if !store.HasBlob(d.Digest) {
				return fmt.Errorf("%w: %s: blob %s is not cached", ErrIncomplete, n, d.Digest)
			}
			b.addBlob(d.Digest, d.Size)
			continue
		}
		child, err := store.Manifest(d.Digest)
		if err != nil {
			return fmt.Errorf("%w: %s: platform %s (%s) is not cached; warm it, or export with --platform",
				ErrIncomplete, n, platformString(d.Platform), d.Digest)
		}
		if err := b.addManifest(store, n, child, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return "unknown"
	}
	return p.String()
}

func (b *bundle) write(store *cache.Store, w io.Writer) error {
	tw := tar.NewWriter(w)
	if err := writeEntry(tw, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: b.entries})
	if err != nil {
		return err
	}
	if err := writeEntry(tw, "index.json", index); err != nil {
		return err
	}
	save, err := b.saveManifest()
	if err != nil {
		return err
	}
	if save != nil {
		if err := writeEntry(tw, "manifest.json", save); err != nil {
			return err
		}
	}
	if len(b.history) > 0 {
		hist, err := json.Marshal(b.history)
		if err != nil {
			return err
		}
		if err := writeEntry(tw, archive.HistoryFile, hist); err != nil {
			return err
		}
	}
	for _, h := range b.order {
		if err := writeBlob(tw, store, h); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, name string, b []byte) error {
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: exportEpoch, Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func writeBlob(tw *tar.Writer, store *cache.Store, h v1.Hash) error {
	f, size, err := store.OpenBlob(h)
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	defer f.Close()
	hdr := &tar.Header{Name: archive.BlobPath(h), Mode: 0o644, Size: size, ModTime: exportEpoch, Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	return nil
}
