package admin

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/archive"
	"github.com/pullcache/pullcache/cache"
)

// ImageDetail describes one cached image or index: what GET /admin/image
// answers.
type ImageDetail struct {
	Registry   string `json:"registry"`
	Repository string `json:"repository"`
	// Tag is set when the image was named by tag.
	Tag       string `json:"tag,omitempty"`
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	// Size is the bytes of the manifest, config and layers that are
	// cached, every blob counted once (all cached platforms of an index).
	Size   int64 `json:"size"`
	Pinned bool  `json:"pinned"`
	// LastPulled is when the manifest was last served; zero if never.
	LastPulled time.Time `json:"last_pulled,omitzero"`
	// Platforms are the children of an index (or the image's own platform).
	Platforms []PlatformInfo `json:"platforms"`
	// Layers, Config and ConfigDigest describe an image manifest.
	Layers       []LayerInfo `json:"layers,omitempty"`
	ConfigDigest string      `json:"config_digest,omitempty"`
	Config       *ConfigInfo `json:"config,omitempty"`
	// Referrers are the artifacts known to refer to the image (signatures,
	// SBOMs, attestations): the last referrers list the mirror fetched
	// from the upstream or imported, as of ReferrersListed (zero: no client
	// asked for them and no import brought any). Set with full only.
	Referrers       []ReferrerInfo `json:"referrers,omitempty"`
	ReferrersListed time.Time      `json:"referrers_listed,omitzero"`
}

// ReferrerInfo is one artifact of a subject's referrers list.
type ReferrerInfo struct {
	Digest       string            `json:"digest"`
	MediaType    string            `json:"media_type"`
	ArtifactType string            `json:"artifact_type,omitempty"`
	Size         int64             `json:"size"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// Cached: the artifact's manifest is in the store (a client pulled
	// it, or an import brought it).
	Cached bool `json:"cached"`
}

// PlatformInfo is one platform of an index.
type PlatformInfo struct {
	Platform  string `json:"platform"`
	Digest    string `json:"digest,omitempty"`
	MediaType string `json:"media_type,omitempty"`
	// Cached: the platform's manifest is in the store.
	Cached bool `json:"cached"`
}

// LayerInfo is one blob an image manifest references.
type LayerInfo struct {
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
	Cached    bool   `json:"cached"`
}

// ConfigInfo is what an image's config says of how it runs and was built.
type ConfigInfo struct {
	Created    time.Time         `json:"created,omitzero"`
	Platform   string            `json:"platform"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Env        []string          `json:"env,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty"`
	User       string            `json:"user,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	History    []v1.History      `json:"history,omitempty"`
}

// maxConfig bounds a config blob read into memory.
const maxConfig = 8 << 20

// ParseRef parses NAME:TAG or NAME@DIGEST (a name without a registry is in
// the default registry). The digest is zero for a tag.
func ParseRef(s, defaultRegistry string) (archive.Name, v1.Hash, error) {
	if name, dig, ok := strings.Cut(s, "@"); ok {
		h, err := v1.NewHash(dig)
		if err != nil {
			return archive.Name{}, v1.Hash{}, fmt.Errorf("%w: %q: %v", archive.ErrBadName, s, err)
		}
		n, err := archive.ParseName(name, defaultRegistry)
		n.Tag = ""
		return n, h, err
	}
	n, err := archive.ParseName(s, defaultRegistry)
	return n, v1.Hash{}, err
}

// Describe describes an image named NAME:TAG or NAME@DIGEST. With full it
// reads the config too (Layers and Config); without, it reads only the
// manifests (for lists).
func (s *server) Describe(ref string, full bool) (ImageDetail, error) {
	n, h, err := ParseRef(ref, s.opts.DefaultRegistry)
	if err != nil {
		return ImageDetail{}, err
	}
	return Describe(s.opts.Store, n, h, full)
}

// Describe describes the image n names (by tag, or by digest h when h is
// set) from the store.
func Describe(store *cache.Store, n archive.Name, h v1.Hash, full bool) (ImageDetail, error) {
	repo := repoOf(n)
	if h.Hex == "" {
		t, err := store.Tag(repo, n.Tag)
		if err != nil {
			return ImageDetail{}, fmt.Errorf("%s: %w", n, err)
		}
		h = t.Digest
	} else if !store.Linked(repo, h) {
		return ImageDetail{}, fmt.Errorf("%s/%s@%s: %w", n.Registry, n.Repository, h, cache.ErrNotFound)
	}
	m, err := store.PeekManifest(h)
	if err != nil {
		return ImageDetail{}, fmt.Errorf("%s: manifest %s: %w", n, h, err)
	}
	info := ImageDetail{Registry: n.Registry, Repository: n.Repository, Tag: n.Tag, Digest: h.String(),
		MediaType: m.MediaType, Pinned: store.PinnedAs(repo, n.Tag, h), Platforms: []PlatformInfo{}}
	if at, ok := store.LastAccess(h); ok {
		info.LastPulled = at.UTC()
	}
	sizes := map[v1.Hash]int64{h: int64(len(m.Bytes))}
	if m.IsIndex() {
		describeIndex(store, m, &info, sizes)
	} else if err := describeImage(store, m, &info, sizes, full); err != nil {
		return info, err
	}
	for _, n := range sizes {
		info.Size += n
	}
	if full {
		describeReferrers(store, repo, h, &info)
	}
	return info, nil
}

// describeReferrers lists the referrers the store knows of h in repo. It
// reads only the index: looking is not pulling, and never asks upstream.
func describeReferrers(store *cache.Store, repo cache.Repo, h v1.Hash, info *ImageDetail) {
	refs, listed, err := store.Referrers(repo, h)
	if err != nil {
		return // never listed
	}
	info.ReferrersListed = listed.UTC()
	info.Referrers = []ReferrerInfo{}
	for _, d := range refs {
		_, err := store.PeekManifest(d.Digest)
		info.Referrers = append(info.Referrers, ReferrerInfo{Digest: d.Digest.String(), MediaType: string(d.MediaType),
			ArtifactType: d.ArtifactType, Size: d.Size, Annotations: d.Annotations, Cached: err == nil})
	}
}

func describeIndex(store *cache.Store, idx *cache.Manifest, info *ImageDetail, sizes map[v1.Hash]int64) {
	for _, d := range idx.Refs {
		p := PlatformInfo{Platform: platformString(d.Platform), Digest: d.Digest.String(), MediaType: d.MediaType}
		if child, err := store.PeekManifest(d.Digest); err == nil {
			p.Cached = true
			sizes[d.Digest] = int64(len(child.Bytes))
			for _, r := range child.Refs {
				if store.HasBlob(r.Digest) {
					sizes[r.Digest] = r.Size
				}
			}
		}
		info.Platforms = append(info.Platforms, p)
	}
}

func describeImage(store *cache.Store, m *cache.Manifest, info *ImageDetail, sizes map[v1.Hash]int64, full bool) error {
	for i, d := range m.Refs {
		cached := store.HasBlob(d.Digest)
		if cached {
			sizes[d.Digest] = d.Size
		}
		if i == 0 {
			info.ConfigDigest = d.Digest.String()
			continue
		}
		info.Layers = append(info.Layers, LayerInfo{Digest: d.Digest.String(), Size: d.Size, MediaType: d.MediaType, Cached: cached})
	}
	if !full || info.ConfigDigest == "" {
		return nil
	}
	cfg, err := readConfig(store, m.Refs[0].Digest)
	if err != nil {
		return err
	}
	info.Config = configInfo(cfg)
	info.Platforms = append(info.Platforms, PlatformInfo{Platform: info.Config.Platform, Digest: info.Digest, MediaType: info.MediaType, Cached: true})
	return nil
}

func readConfig(store *cache.Store, h v1.Hash) (*v1.ConfigFile, error) {
	f, _, err := store.PeekBlob(h)
	if errors.Is(err, cache.ErrNotFound) {
		return nil, fmt.Errorf("%w: config %s is not cached", ErrIncomplete, h)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := v1.ParseConfigFile(io.LimitReader(f, maxConfig))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", h, err)
	}
	return cfg, nil
}

func configInfo(cfg *v1.ConfigFile) *ConfigInfo {
	p := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	return &ConfigInfo{
		Created: cfg.Created.UTC(), Platform: p.String(),
		Entrypoint: cfg.Config.Entrypoint, Cmd: cfg.Config.Cmd, Env: cfg.Config.Env,
		WorkingDir: cfg.Config.WorkingDir, User: cfg.Config.User, Labels: cfg.Config.Labels,
		History: cfg.History,
	}
}

func (s *server) imageJSON(w http.ResponseWriter, r *http.Request) error {
	ref := r.URL.Query().Get("image")
	if ref == "" {
		return errorf(http.StatusBadRequest, "NAME_INVALID", "name the image: image=NAME:TAG or NAME@DIGEST")
	}
	info, err := s.Describe(ref, true)
	if err != nil {
		return err
	}
	return writeJSON(w, info)
}
