package admin

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache"
)

// The store's maintenance, as functions the CLI calls on a store it opened
// and the admin API calls on the serving one: list, pin, unpin, rm, gc,
// verify, df, history.

// Image is one entry of GET /admin/images: one per tag (and one per image
// cached by digest only, with no tag).
type Image struct {
	// Name is registry/repository:tag (or the digest of an untagged image).
	Name       string     `json:"name"`
	Registry   string     `json:"registry,omitempty"`
	Repository string     `json:"repository,omitempty"`
	Tag        string     `json:"tag,omitempty"`
	Digest     string     `json:"digest"`
	MediaType  string     `json:"media_type"`
	Platforms  []string   `json:"platforms,omitempty"`
	Size       int64      `json:"size"`
	UniqueSize int64      `json:"unique_size"`
	LastPulled *time.Time `json:"last_pulled,omitempty"`
	Pinned     bool       `json:"pinned"`
}

// List returns every cached image, sorted by name.
func List(store *cache.Store) ([]Image, error) { return ListMatching(store, "") }

// ListMatching returns the images whose name matches pattern: a glob
// (path.Match: "docker.io/library/*:*", "library/golang:*") tried on the
// full name and on repository:tag, or, without wildcards, a substring of
// the name. An empty pattern matches everything.
func ListMatching(store *cache.Store, pattern string) ([]Image, error) {
	l, err := store.List()
	if err != nil {
		return nil, err
	}
	return matching(l.Images, pattern), nil
}

// ImagesAndDF is what ls shows: the images that match, and the disk figures.
type ImagesAndDF struct {
	Images []Image `json:"images"`
	DF     DF      `json:"df"`
}

// ListWithDF is ListMatching with the disk figures, from the same read of
// the index: what pinned images occupy comes with the list, not from a
// second pass.
func ListWithDF(store *cache.Store, pattern string) (ImagesAndDF, error) {
	l, err := store.List()
	if err != nil {
		return ImagesAndDF{}, err
	}
	return ImagesAndDF{Images: matching(l.Images, pattern), DF: diskFigures(store.Usage(), l.Pinned)}, nil
}

func matching(infos []cache.ImageInfo, pattern string) []Image {
	out := []Image{}
	for _, i := range infos {
		if matchImage(pattern, i) {
			out = append(out, toImage(i))
		}
	}
	return out
}

func toImage(i cache.ImageInfo) Image {
	img := Image{Name: i.Name(), Registry: i.Registry, Repository: i.Repository, Tag: i.Tag, Digest: i.Digest,
		MediaType: i.MediaType, Platforms: i.Platforms, Size: i.Size, UniqueSize: i.Unique, Pinned: i.Pinned}
	if !i.LastPulled.IsZero() {
		t := i.LastPulled
		img.LastPulled = &t
	}
	return img
}

func matchImage(pattern string, i cache.ImageInfo) bool {
	if pattern == "" {
		return true
	}
	if !strings.ContainsAny(pattern, "*?[") {
		return strings.Contains(i.Name(), pattern)
	}
	for _, n := range []string{i.Name(), i.Repository + ":" + i.Tag} {
		if ok, _ := path.Match(pattern, n); ok {
			return true
		}
	}
	return false
}

// parseImageRef parses NAME:TAG or NAME@DIGEST, with the default registry and
// Docker Hub's library/ for names that carry none.
func parseImageRef(s, registry string) (cache.ImageRef, error) {
	if registry == "" {
		registry = "docker.io"
	}
	ref, err := name.ParseReference(s, name.WithDefaultRegistry(registry))
	if err != nil {
		return cache.ImageRef{}, fmt.Errorf("%w: %q: %v", ErrBadImage, s, err)
	}
	reg := ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	out := cache.ImageRef{Repo: cache.Repo{Registry: reg, Name: ref.Context().RepositoryStr()}}
	switch r := ref.(type) {
	case name.Tag:
		out.Tag = r.TagStr()
	case name.Digest:
		h, err := v1.NewHash(r.DigestStr())
		if err != nil {
			return out, fmt.Errorf("%w: %q: %v", ErrBadImage, s, err)
		}
		out.Digest = h
	}
	return out, nil
}

// ErrBadImage says an image name could not be parsed.
var ErrBadImage = errors.New("invalid image name")

// PinPattern turns what a user typed into a pin pattern: a name is made
// complete (golang:1.22 → docker.io/library/golang:1.22); a pattern with
// wildcards must already name its registry and repository.
func PinPattern(s, registry string) (string, error) {
	if strings.ContainsAny(s, "*?[") {
		if err := cache.ValidPinPattern(s); err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadImage, err)
		}
		return s, nil
	}
	ref, err := parseImageRef(s, registry)
	if err != nil {
		return "", err
	}
	return ref.String(), nil
}

// Pin pins every name or pattern; it returns the patterns stored.
func Pin(store *cache.Store, names []string, registry string) ([]string, error) {
	return eachPin(names, registry, store.Pin)
}

// Unpin removes pins; it returns the patterns removed.
func Unpin(store *cache.Store, names []string, registry string) ([]string, error) {
	return eachPin(names, registry, store.Unpin)
}

func eachPin(names []string, registry string, fn func(string) error) ([]string, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: name at least one image", ErrBadImage)
	}
	var done []string
	var errs []error
	for _, n := range names {
		p, err := PinPattern(n, registry)
		if err == nil {
			err = fn(p)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, p)
	}
	return done, errors.Join(errs...)
}

// Remove soft-deletes the named images (tags, or images by digest).
func Remove(store *cache.Store, names []string, registry string, dryRun bool) (cache.GCReport, error) {
	if len(names) == 0 {
		return cache.GCReport{}, fmt.Errorf("%w: name at least one image", ErrBadImage)
	}
	var refs []cache.ImageRef
	for _, n := range names {
		r, err := parseImageRef(n, registry)
		if err != nil {
			return cache.GCReport{}, err
		}
		refs = append(refs, r)
	}
	return store.Remove(refs, dryRun)
}

// DF is what GET /admin/df answers.
type DF struct {
	cache.Usage
	// Pinned is what pinned images occupy; Reclaimable what eviction could
	// free (everything else that is cached).
	Pinned      int64 `json:"pinned"`
	Reclaimable int64 `json:"reclaimable"`
	// PinnedOverBound says pins alone exceed the bound.
	PinnedOverBound bool `json:"pinned_over_bound,omitempty"`
}

// DiskUsage measures the cache.
func DiskUsage(store *cache.Store) (DF, error) {
	pinned, err := store.PinnedSize()
	if err != nil {
		return DF{}, err
	}
	return diskFigures(store.Usage(), pinned), nil
}

// diskFigures are df's figures from the store's use and what is pinned.
func diskFigures(u cache.Usage, pinned int64) DF {
	return DF{Usage: u, Pinned: pinned, Reclaimable: max(u.Blobs-pinned, 0), PinnedOverBound: u.Bound > 0 && pinned > u.Bound}
}

// TagHistory is the history of one tag.
type TagHistory struct {
	Image   string               `json:"image"`
	Entries []cache.HistoryEntry `json:"history"`
}

// History returns the history of NAME:TAG, or of every tag of NAME when
// no tag is given.
func History(store *cache.Store, image, registry string) ([]TagHistory, error) {
	withTag := strings.Contains(image[strings.LastIndex(image, "/")+1:], ":")
	ref, err := parseImageRef(image, registry)
	if err != nil {
		return nil, err
	}
	if ref.Tag == "" {
		return nil, fmt.Errorf("%w: history is kept per tag: name NAME or NAME:TAG", ErrBadImage)
	}
	if withTag {
		hist, err := store.History(ref.Repo, ref.Tag)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		return []TagHistory{{Image: ref.String(), Entries: hist}}, nil
	}
	all, err := store.RepoHistory(ref.Repo)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%s: %w", ref.Repo, cache.ErrNotFound)
	}
	out := []TagHistory{}
	for tag, hist := range all {
		out = append(out, TagHistory{Image: ref.Repo.String() + ":" + tag, Entries: hist})
	}
	slices.SortFunc(out, func(a, b TagHistory) int { return strings.Compare(a.Image, b.Image) })
	return out, nil
}
