package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Keys of the index. A repository is "<registry>/<name>".
//
//	m:<digest>            manifest record (media type, size, references)
//	b:<digest>            blob record (size)
//	t:<repo>:<tag>        tag record (digest, when last confirmed upstream)
//	l:<repo>@<digest>     link: the repository may serve this digest
//	tl:<repo>             the repository's last known tag list
//	rf:<repo>@<digest>    the last known referrers of a subject (referrers.go)
//	a:<digest>            last access (unix seconds)
func manifestKey(h v1.Hash) []byte        { return []byte("m:" + h.String()) }
func blobKey(h v1.Hash) []byte            { return []byte("b:" + h.String()) }
func tagKey(r Repo, tag string) []byte    { return []byte("t:" + r.String() + ":" + tag) }
func linkKey(r Repo, h v1.Hash) []byte    { return []byte("l:" + r.String() + "@" + h.String()) }
func tagListKey(r Repo) []byte            { return []byte("tl:" + r.String()) }
func accessKey(h v1.Hash) []byte          { return []byte("a:" + h.String()) }
func hotTagKey(r Repo, tag string) string { return r.String() + ":" + tag }

// Repo names a repository of one upstream registry.
type Repo struct {
	Registry string // e.g. docker.io
	Name     string // e.g. library/alpine
}

func (r Repo) String() string { return r.Registry + "/" + r.Name }

// Tag is what a tag resolved to, and when upstream last confirmed it.
type Tag struct {
	Digest    v1.Hash   `json:"d"`
	Confirmed time.Time `json:"c"`
}

type blobRecord struct {
	Size int64 `json:"s"`
}

type tagListRecord struct {
	Tags    []string  `json:"tags"`
	Fetched time.Time `json:"fetched"`
}

func (s *Store) getJSON(key []byte, v any) error {
	return s.db.View(func(txn *badger.Txn) error { return readJSON(txn, key, v) })
}

func readJSON(txn *badger.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

func setJSON(txn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

func (s *Store) putBlobSize(h v1.Hash, size int64) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, blobKey(h), blobRecord{Size: size}) })
}

// blobSize is the size recorded for a blob, from a manifest that references
// it or from its commit.
func (s *Store) blobSize(h v1.Hash) (int64, error) {
	var rec blobRecord
	if err := s.getJSON(blobKey(h), &rec); err != nil {
		return -1, err
	}
	return rec.Size, nil
}

// Linked reports whether repository r may serve digest h: a manifest of r
// referenced it, or it was fetched from upstream under r. The repository is
// the permission boundary: a blob another repository holds is not r's.
func (s *Store) Linked(r Repo, h v1.Hash) bool {
	key := linkKey(r, h)
	if _, ok := s.hotLink.Get(string(key)); ok {
		return true
	}
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(key)
		return err
	})
	if err == nil {
		s.hotLink.Add(string(key), struct{}{})
	}
	return err == nil
}

// Link records that repository r may serve digest h. While the disk is
// too full to write the index, the link is kept in memory only (the
// upstream confirmed it; after a restart it is confirmed again).
func (s *Store) Link(r Repo, h v1.Hash) error {
	err := s.update(func(txn *badger.Txn) error { return txn.Set(linkKey(r, h), nil) })
	if errors.Is(err, ErrIndexReadOnly) {
		s.hotLink.Add(string(linkKey(r, h)), struct{}{})
		return nil
	}
	return err
}

// PutManifest stores a manifest's exact bytes as a blob and, in one index
// transaction, its record, links from r to it and to everything it
// references, the sizes of those references, and the tag if one is given.
func (s *Store) PutManifest(r Repo, m *Manifest, tag string, confirmed time.Time) error {
	if err := s.writeSmallBlob(m.Digest, m.Bytes); err != nil {
		return err
	}
	// An eviction pass running now must not delete what m references.
	s.eviction.guard.phase.RLock()
	defer s.eviction.guard.phase.RUnlock()
	s.eviction.guard.note(m)
	err := s.update(func(txn *badger.Txn) error {
		if err := setJSON(txn, manifestKey(m.Digest), m.record()); err != nil {
			return err
		}
		if err := txn.Set(linkKey(r, m.Digest), nil); err != nil {
			return err
		}
		for _, d := range m.Refs {
			if err := txn.Set(linkKey(r, d.Digest), nil); err != nil {
				return err
			}
			if d.Size >= 0 {
				if err := setJSON(txn, blobKey(d.Digest), blobRecord{Size: d.Size}); err != nil {
					return err
				}
			}
		}
		if tag == "" {
			return nil
		}
		return s.setTag(txn, r, tag, Tag{Digest: m.Digest, Confirmed: confirmed})
	})
	if err != nil {
		return fmt.Errorf("index manifest %s: %w", m.Digest, err)
	}
	s.graph.change(func(g *graph) {
		g.putNode(m)
		if tag != "" {
			g.setTag(TagRef{Repo: r, Tag: tag}, keyOf(m.Digest))
		}
	})
	s.access.touch(m.Digest) // a manifest just fetched was just used
	s.hotMan.Add(m.Digest, m)
	if tag != "" {
		s.hotTag.Add(hotTagKey(r, tag), Tag{Digest: m.Digest, Confirmed: confirmed})
	}
	return nil
}

// Manifest returns a stored manifest with its bytes, and records the
// access.
func (s *Store) Manifest(h v1.Hash) (*Manifest, error) {
	m, err := s.PeekManifest(h)
	if err == nil {
		s.access.touch(h)
	}
	return m, err
}

// PeekManifest is Manifest without recording an access: looking at the
// cache (the console) must not count as a pull.
func (s *Store) PeekManifest(h v1.Hash) (*Manifest, error) {
	if m, ok := s.hotMan.Get(h); ok {
		return m, nil
	}
	var rec manifestRecord
	if err := s.getJSON(manifestKey(h), &rec); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.blobPath(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", h, err)
	}
	m := &Manifest{Digest: h, MediaType: rec.MediaType, Bytes: b, Refs: rec.Refs}
	s.hotMan.Add(h, m)
	return m, nil
}

// Tag returns what tag of r resolved to when last seen.
func (s *Store) Tag(r Repo, tag string) (Tag, error) {
	if t, ok := s.hotTag.Get(hotTagKey(r, tag)); ok {
		return t, nil
	}
	var t Tag
	if err := s.getJSON(tagKey(r, tag), &t); err != nil {
		return Tag{}, err
	}
	s.hotTag.Add(hotTagKey(r, tag), t)
	return t, nil
}

// ConfirmTag records that upstream confirmed tag of r still points at h.
// While the disk is too full to write the index, the confirmation is kept
// in memory only: the tag is served, and confirmed again after the TTL.
func (s *Store) ConfirmTag(r Repo, tag string, h v1.Hash, at time.Time) error {
	t := Tag{Digest: h, Confirmed: at}
	s.hotTag.Add(hotTagKey(r, tag), t)
	err := s.update(func(txn *badger.Txn) error { return s.setTag(txn, r, tag, t) })
	if errors.Is(err, ErrIndexReadOnly) {
		return nil
	}
	if err == nil {
		s.graph.change(func(g *graph) { g.setTag(TagRef{Repo: r, Tag: tag}, keyOf(h)) })
	}
	if err != nil {
		return fmt.Errorf("index tag: %w", err)
	}
	return nil
}

// DeleteTag forgets a tag (upstream said it is gone).
func (s *Store) DeleteTag(r Repo, tag string) error {
	s.hotTag.Remove(hotTagKey(r, tag))
	err := s.update(func(txn *badger.Txn) error { return txn.Delete(tagKey(r, tag)) })
	if err == nil {
		s.graph.change(func(g *graph) { g.deleteTag(TagRef{Repo: r, Tag: tag}) })
	}
	return err
}

// PutTagList records the full tag list of r as upstream sent it.
func (s *Store) PutTagList(r Repo, tags []string, at time.Time) error {
	return s.update(func(txn *badger.Txn) error {
		return setJSON(txn, tagListKey(r), tagListRecord{Tags: tags, Fetched: at})
	})
}

// TagList returns the last known tag list of r and when it was fetched.
func (s *Store) TagList(r Repo) ([]string, time.Time, error) {
	var rec tagListRecord
	if err := s.getJSON(tagListKey(r), &rec); err != nil {
		return nil, time.Time{}, err
	}
	return rec.Tags, rec.Fetched, nil
}

// writeSmallBlob writes bytes already in memory (a manifest), verified
// against h like any blob.
func (s *Store) writeSmallBlob(h v1.Hash, b []byte) error {
	return s.PutBlob(h, int64(len(b)), bytes.NewReader(b))
}
