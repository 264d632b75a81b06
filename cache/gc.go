package cache

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// GC evicts least recently used images down to the low-water mark when the
// cache is over its bound (or the filesystem below MinFree), and sweeps
// orphans older than the grace period. With dryRun it only reports.
func (s *Store) GC(dryRun bool) (GCReport, error) {
	<-s.use.scanned
	return s.evict(evictRequest{need: s.overBound(), sweep: true, dryRun: dryRun})
}

// ImageRef names an image: a tag of a repository, or a digest.
type ImageRef struct {
	Repo   Repo
	Tag    string
	Digest v1.Hash
}

func (r ImageRef) String() string {
	if r.Tag != "" {
		return r.Repo.String() + ":" + r.Tag
	}
	return r.Repo.String() + "@" + r.Digest.String()
}

// Remove soft-deletes images: each tag named is removed; an image that no
// remaining tag names is evicted (its manifest records and tags go first,
// then the files no other image references). An image named by digest is
// evicted with all its tags. Pins do not protect an image from Remove.
func (s *Store) Remove(refs []ImageRef, dryRun bool) (GCReport, error) {
	<-s.use.scanned
	var errs []error
	var tags []ImageRef
	rep, err := s.evict(evictRequest{dryRun: dryRun, targets: func(g *graph) []*mnode {
		var out []*mnode
		removed := map[*mnode]int{}
		for _, ref := range refs {
			root, err := g.resolve(ref)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ref.Tag != "" {
				tags = append(tags, ref)
				if removed[root]++; removed[root] < len(root.tags) {
					continue // another tag still names it
				}
			}
			if !slices.Contains(out, root) {
				out = append(out, root)
			}
		}
		return out
	}})
	if err != nil {
		return rep, err
	}
	if !dryRun {
		for _, t := range tags {
			errs = append(errs, s.DeleteTag(t.Repo, t.Tag))
		}
	}
	return rep, errors.Join(errs...)
}

// resolve finds the image a reference names.
func (g *graph) resolve(ref ImageRef) (*mnode, error) {
	if ref.Tag == "" {
		n := g.nodes[keyOf(ref.Digest)]
		if n == nil {
			return nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
		}
		if n.child {
			return nil, fmt.Errorf("%s is a platform of a multi-platform image; remove the image (its index) instead", ref)
		}
		return n, nil
	}
	for _, r := range g.roots {
		for _, t := range r.tags {
			if t.Repo == ref.Repo && t.Tag == ref.Tag {
				return r, nil
			}
		}
	}
	for _, n := range g.nodes {
		for _, t := range n.tags {
			if t.Repo == ref.Repo && t.Tag == ref.Tag {
				return nil, fmt.Errorf("%s points at a platform of a multi-platform image; remove the image (its index) instead", ref)
			}
		}
	}
	return nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
}

// ImageInfo describes one cached image under one tag (or untagged).
type ImageInfo struct {
	Registry   string `json:"registry,omitempty"`
	Repository string `json:"repository,omitempty"`
	// Tag is empty for an image cached by digest only.
	Tag       string   `json:"tag,omitempty"`
	Digest    string   `json:"digest"`
	MediaType string   `json:"media_type"`
	Platforms []string `json:"platforms,omitempty"`
	// Size is what the image's cached files occupy; Unique is the part no
	// other image shares (what evicting it frees).
	Size   int64 `json:"size"`
	Unique int64 `json:"unique_size"`
	// LastPulled is when a client last pulled the image (zero: never
	// recorded).
	LastPulled time.Time `json:"last_pulled"`
	Pinned     bool      `json:"pinned"`
}

// Name is registry/repository:tag, or the digest of an untagged image.
func (i ImageInfo) Name() string {
	if i.Tag == "" {
		if i.Repository == "" {
			return i.Digest
		}
		return i.Registry + "/" + i.Repository + "@" + i.Digest
	}
	return i.Registry + "/" + i.Repository + ":" + i.Tag
}

// images lists every cached image: one entry per tag, and one per image
// that no tag names, sorted by name.
func (s *Store) images() ([]ImageInfo, error) {
	l, err := s.List()
	return l.Images, err
}

// Listing is every cached image and what the pinned ones occupy, from one
// read of the index: what ls shows.
type Listing struct {
	// Images are sorted by name (see Images).
	Images []ImageInfo
	// Pinned is what the files of pinned images occupy, each file once.
	Pinned int64
}

// List lists every cached image (see Images) and measures what the pinned
// ones occupy, reading the index once. It waits for the start-up scan,
// which reconciles the blob records the sizes come from with the files.
func (s *Store) List() (Listing, error) {
	<-s.use.scanned
	s.access.flush()
	var l Listing
	err := s.graph.use(func(g *graph) error {
		l = g.listing()
		return nil
	})
	// Sorted once the graph is let go: writes need not wait for it.
	l.Images = sortByName(l.Images)
	return l, err
}

// listing is every image under each of its tags, unsorted.
func (g *graph) listing() Listing {
	n := 0
	for _, r := range g.roots {
		n += max(len(r.tags), 1)
	}
	infos := make([]ImageInfo, 0, n)
	for _, r := range g.roots {
		base := g.info(r)
		if len(r.tags) == 0 {
			infos = append(infos, base)
		}
		for _, t := range r.tags {
			i := base
			i.Registry, i.Repository, i.Tag = t.Repo.Registry, t.Repo.Name, t.Tag
			infos = append(infos, i)
		}
	}
	return Listing{Images: infos, Pinned: g.pinnedBytes(g.alloc)}
}

// PinnedSize measures what pinned images occupy, each file once: df's
// figure (and the pinned metric, with the loud line when it is more than
// the bound). It neither runs a pass nor waits for one.
func (s *Store) PinnedSize() (int64, error) {
	<-s.use.scanned
	var pinned int64
	err := s.graph.use(func(g *graph) error {
		pinned = g.pinnedBytes(g.alloc)
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.notePinned(pinned, s.exceedsBound(pinned))
	return pinned, nil
}

// sortByName sorts images by Name, building each name once (a hundred
// thousand images take a couple of million comparisons).
func sortByName(infos []ImageInfo) []ImageInfo {
	names := make([]string, len(infos))
	order := make([]int32, len(infos))
	for i := range infos {
		names[i], order[i] = infos[i].Name(), int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(names[a], names[b]) })
	out := make([]ImageInfo, len(infos))
	for i, j := range order {
		out[i] = infos[j]
	}
	return out
}

func (g *graph) info(r *mnode) ImageInfo {
	i := ImageInfo{Digest: g.hashOf(r.k).String(), MediaType: r.mediaType, Pinned: g.pinned(r)}
	if last := g.lastUsed(r); last > 0 {
		i.LastPulled = time.UnixMilli(last).UTC()
	}
	if r.isIndex() {
		for _, p := range r.platforms {
			if p != nil {
				i.Platforms = append(i.Platforms, p.String())
			}
		}
	}
	for _, k := range g.reach(r) {
		alloc, ok := g.alloc(k)
		if !ok {
			continue
		}
		i.Size += alloc
		if n, _ := g.refs(k); n <= 1 {
			i.Unique += alloc
		}
	}
	return i
}

// maintain runs in the background: it watches the disk (the index goes
// read-only before a full disk could crash it, and writable again when
// space returns), keeps the cache inside its bound, sweeps orphans and
// garbage-collects badger's value log.
func (s *Store) maintain() {
	defer s.wg.Done()
	<-s.use.scanned
	tick := time.NewTicker(s.opts.Housekeeping)
	defer tick.Stop()
	lastSweep, lastVlog := time.Now(), time.Now()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		case <-s.kick:
		}
		s.gate.check()
		s.writeHeldTags()
		u := s.Usage()
		s.metrics.observe(u, s.gate.readOnly.Load())
		sweep := time.Since(lastSweep) >= s.opts.SweepEvery
		need := s.overBound()
		if need > 0 && !sweep && s.eviction.futile.skip(s.use.blobs.Load()) {
			continue
		}
		if need > 0 || sweep {
			rep, err := s.evict(evictRequest{need: need, sweep: sweep})
			if err != nil {
				s.log.Warn("eviction pass failed", "err", err)
			}
			s.eviction.futile.record(need > 0 && rep.Freed == 0, s.use.blobs.Load())
			if sweep {
				lastSweep = time.Now()
			}
		}
		if time.Since(lastVlog) >= s.opts.SweepEvery {
			s.valueLogGC()
			lastVlog = time.Now()
		}
	}
}

// futilePass remembers a pass that was over the bound and could free
// nothing (everything pinned or in use): the next ones wait until the
// cache grew or five minutes passed, instead of reading the whole index
// every tick.
type futilePass struct {
	mu   sync.Mutex
	at   time.Time
	used int64
}

func (f *futilePass) skip(used int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.at.IsZero() && used <= f.used && time.Since(f.at) < 5*time.Minute
}

func (f *futilePass) record(futile bool, used int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if futile {
		f.at, f.used = time.Now(), used
	} else {
		f.at = time.Time{}
	}
}

// kickEviction asks the maintenance loop for a pass now (a fill ran out of
// space).
func (s *Store) kickEviction() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// valueLogGC rewrites value log files that are mostly garbage, so the
// index does not grow forever under tag churn.
func (s *Store) valueLogGC() {
	if s.gate.readOnly.Load() {
		return
	}
	for range 10 {
		if err := s.db.RunValueLogGC(0.5); err != nil {
			return
		}
	}
}
