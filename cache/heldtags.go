package cache

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// heldTags are tags adopted while the index was read-only: served from
// memory (hotTag, hotLink), written when the index is writable again.
type heldTags struct {
	mu   sync.Mutex
	tags map[string]heldTag // by hotTagKey
}

type heldTag struct {
	repo Repo
	tag  string
	m    *Manifest
	at   time.Time
}

// maxHeldTags bounds the tags held in memory; beyond it a tag is served
// but written only when it is asked for again.
const maxHeldTags = 4096

// AdoptTag records that tag of r points at m, a manifest already stored
// (the upstream confirmed the digest with a HEAD): r is linked to m and to
// everything m references, and the tag is set. On a full disk the index
// is read-only, yet this needs no new content: it is kept in memory, so
// the tag is served now, and written when the index is writable again.
func (s *Store) AdoptTag(r Repo, tag string, m *Manifest, at time.Time) error {
	t := Tag{Digest: m.Digest, Confirmed: at}
	s.eviction.guard.phase.RLock()
	defer s.eviction.guard.phase.RUnlock()
	s.eviction.guard.note(m)
	err := s.update(func(txn *badger.Txn) error {
		for _, k := range adoptedLinks(r, m) {
			if err := txn.Set(k, nil); err != nil {
				return err
			}
		}
		return s.setTag(txn, r, tag, t)
	})
	s.hotTag.Add(hotTagKey(r, tag), t)
	if errors.Is(err, ErrIndexReadOnly) {
		s.holdTag(heldTag{repo: r, tag: tag, m: m, at: at})
		return nil
	}
	if err != nil {
		return fmt.Errorf("index tag: %w", err)
	}
	return nil
}

func adoptedLinks(r Repo, m *Manifest) [][]byte {
	keys := [][]byte{linkKey(r, m.Digest)}
	for _, d := range m.Refs {
		keys = append(keys, linkKey(r, d.Digest))
	}
	return keys
}

func (s *Store) holdTag(h heldTag) {
	for _, k := range adoptedLinks(h.repo, h.m) {
		s.hotLink.Add(string(k), struct{}{})
	}
	s.held.mu.Lock()
	defer s.held.mu.Unlock()
	if s.held.tags == nil {
		s.held.tags = map[string]heldTag{}
	}
	if len(s.held.tags) < maxHeldTags {
		s.held.tags[hotTagKey(h.repo, h.tag)] = h
	}
}

// writeHeldTags writes the tags adopted while the index was read-only,
// once it is writable again (maintenance calls it). A tag set meanwhile
// by a newer answer is left as it is.
func (s *Store) writeHeldTags() {
	if s.gate.readOnly.Load() {
		return
	}
	s.held.mu.Lock()
	held := s.held.tags
	s.held.tags = nil
	s.held.mu.Unlock()
	for k, h := range held {
		if t, ok := s.hotTag.Get(k); ok && t.Digest != h.m.Digest {
			continue
		}
		if err := s.AdoptTag(h.repo, h.tag, h.m, h.at); err != nil {
			s.log.Warn("write tag held while the index was read-only", "repo", h.repo.String(), "tag", h.tag, "err", err)
		}
	}
}

// IndexReadOnly reports whether the index cannot be written now (the disk
// is too full): nothing new can be cached, what is cached is served.
func (s *Store) IndexReadOnly() bool { return !s.gate.writable() }
