// Package admin is pullcache's maintenance surface for air-gapped and
// offline sites: importing archives into the store, exporting cached images
// as an OCI-layout tar, warming the cache by pulling through the mirror, and
// listing what is cached — as plain functions for the CLI when no server
// runs, and as an HTTP API (Handler) that a running server mounts on its
// admin socket.
//
// It is not the registry API: it never answers /v2/ requests and it never
// talks to an upstream registry itself (Warm pulls through the mirror, so
// fills, verification and deduplication stay the mirror's).
package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/cache"
)

// Imported is one image, or one referrer, an import stored.
type Imported struct {
	// Name is registry/repository:tag; for a referrer,
	// registry/repository@subject.
	Name string `json:"name"`
	// Digest is the digest of the top manifest the tag points to, or of
	// the referrer.
	Digest string `json:"digest"`
	// Subject and ArtifactType are set for a referrer (a signature, an
	// SBOM): the manifest it refers to, and what it is.
	Subject      string `json:"subject,omitempty"`
	ArtifactType string `json:"artifact_type,omitempty"`
	// Skipped, when set, says why a referrer was not stored.
	Skipped string `json:"skipped,omitempty"`
}

// Import stores every image of a verified archive: its blobs first, then,
// per repository, its manifests, links, tags and pins in one index
// transaction, so an interruption leaves no half image. Then the
// archive's referrers, under the repositories of their subjects.
// Everything was verified by archive.Open, so what can fail here is I/O.
func Import(store *cache.Store, a *archive.Archive, at time.Time) ([]Imported, error) {
	return importAll(store, a, at, nil)
}

// importAll is Import, reporting the bytes of blobs stored so far to
// progress (if not nil).
func importAll(store *cache.Store, a *archive.Archive, at time.Time, progress func(done, total int64)) ([]Imported, error) {
	m := newStoreMeter(a, progress)
	if err := store.EnsureRoom(newBytes(store, a)); err != nil {
		return nil, fmt.Errorf("the archive does not fit: %w", err)
	}
	var out []Imported
	repos := map[v1.Hash][]cache.Repo{} // manifest digest → repositories now holding it
	for _, img := range a.Images {
		done, err := importImage(store, img, repos, at, m)
		out = append(out, done...)
		if err != nil {
			return out, err
		}
	}
	done, err := importReferrers(store, a.Referrers, repos, at, m)
	out = append(out, done...)
	if err != nil {
		return out, err
	}
	return out, importHistory(store, a.History)
}

// newBytes is what importing a would add to the store.
func newBytes(store *cache.Store, a *archive.Archive) int64 {
	var n int64
	seen := map[string]bool{}
	for _, img := range a.Images {
		for _, b := range img.Blobs {
			if !seen[b.Digest.String()] && !store.HasBlob(b.Digest) {
				n += b.Size
			}
			seen[b.Digest.String()] = true
		}
		for _, m := range img.Manifests {
			n += int64(len(m.Bytes))
		}
	}
	return n
}

// importHistory merges the tag history an exported bundle carries.
func importHistory(store *cache.Store, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	var hist map[string][]cache.HistoryEntry
	if err := json.Unmarshal(b, &hist); err != nil {
		return fmt.Errorf("%w: %s: %v", archive.ErrCorrupt, archive.HistoryFile, err)
	}
	for img, entries := range hist {
		ref, err := parseImageRef(img, "")
		if err != nil || ref.Tag == "" {
			continue
		}
		if err := store.MergeHistory(ref.Repo, ref.Tag, entries); err != nil {
			return err
		}
	}
	return nil
}

// storeMeter counts the blob bytes an import has stored.
type storeMeter struct {
	done, total int64
	report      func(done, total int64)
}

func newStoreMeter(a *archive.Archive, report func(done, total int64)) *storeMeter {
	m := &storeMeter{report: report}
	seen := map[string]bool{}
	blobs := [][]archive.Blob{}
	for _, img := range a.Images {
		blobs = append(blobs, img.Blobs)
	}
	for _, rf := range a.Referrers {
		blobs = append(blobs, rf.Blobs)
	}
	for _, bs := range blobs {
		for _, b := range bs {
			if !seen[b.Digest.String()] {
				seen[b.Digest.String()] = true
				m.total += b.Size
			}
		}
	}
	return m
}

func (m *storeMeter) add(n int64) {
	m.done += n
	if m.report != nil {
		m.report(min(m.done, m.total), m.total)
	}
}

func (m *storeMeter) Write(p []byte) (int, error) {
	m.add(int64(len(p)))
	return len(p), nil
}

func importImage(store *cache.Store, img archive.Image, repos map[v1.Hash][]cache.Repo, at time.Time, m *storeMeter) ([]Imported, error) {
	manifests, err := storeContent(store, img.Blobs, img.Manifests, m)
	if err != nil {
		return nil, err
	}
	var out []Imported
	for repo, tags := range tagsByRepo(img.Names) {
		if err := store.ImportImage(repo, tags, manifests, at); err != nil {
			return out, err
		}
		for _, pm := range manifests {
			repos[pm.Digest] = appendRepo(repos[pm.Digest], repo)
		}
		for _, t := range tags {
			out = append(out, Imported{Name: repo.String() + ":" + t, Digest: manifests[0].Digest.String()})
		}
	}
	return out, nil
}

// storeContent writes blobs and parses the manifests that reference them.
func storeContent(store *cache.Store, blobs []archive.Blob, ms []archive.Manifest, m *storeMeter) ([]*cache.Manifest, error) {
	for _, b := range blobs {
		if err := putBlob(store, b, m); err != nil {
			return nil, err
		}
	}
	manifests := make([]*cache.Manifest, 0, len(ms))
	for _, mf := range ms {
		pm, err := cache.ParseManifest(mf.Bytes, mf.MediaType, mf.Digest)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", mf.Digest, err)
		}
		manifests = append(manifests, pm)
	}
	return manifests, nil
}

func putBlob(store *cache.Store, b archive.Blob, m *storeMeter) error {
	if store.HasBlob(b.Digest) {
		m.add(b.Size)
		return nil
	}
	rc, err := b.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := store.PutBlob(b.Digest, b.Size, io.TeeReader(rc, m)); err != nil {
		return fmt.Errorf("store blob %s: %w", b.Digest, err)
	}
	return nil
}

func tagsByRepo(names []archive.Name) map[cache.Repo][]string {
	out := map[cache.Repo][]string{}
	for _, n := range names {
		r := repoOf(n)
		out[r] = append(out[r], n.Tag)
	}
	return out
}

func repoOf(n archive.Name) cache.Repo {
	return cache.Repo{Registry: n.Registry, Name: n.Repository}
}

// ImportFile opens, verifies and imports one archive file or OCI layout
// directory.
func ImportFile(store *cache.Store, path string, opts archive.Options, at time.Time) ([]Imported, error) {
	if err := ensureRoomFor(store, path); err != nil {
		return nil, err
	}
	a, err := archive.Open(path, opts)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	return Import(store, a, at)
}

// ImportReader verifies and imports an archive read from r (an upload).
func ImportReader(store *cache.Store, r io.Reader, opts archive.Options, at time.Time) ([]Imported, error) {
	return importReader(store, r, opts, at, nil)
}

func importReader(store *cache.Store, r io.Reader, opts archive.Options, at time.Time, progress func(done, total int64)) ([]Imported, error) {
	a, err := archive.Read(r, opts)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	return importAll(store, a, at, progress)
}

// ensureRoomFor refuses an import before anything is unpacked when the
// archive cannot fit: a file is unpacked (at least its own size) and then
// stored; a directory is stored from where it is.
func ensureRoomFor(store *cache.Store, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	need := 2 * fi.Size()
	if fi.IsDir() {
		need = 0
		_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if i, err := d.Info(); err == nil {
					need += i.Size()
				}
			}
			return nil
		})
	}
	if err := store.EnsureRoom(need); err != nil {
		return fmt.Errorf("%s does not fit in the cache: %w", path, err)
	}
	return nil
}
