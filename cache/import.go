package cache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullcache/pullcache/cache/blobs"
)

// pinKey marks a digest that expiry and eviction must keep (imported
// content).
func pinKey(h v1.Hash) []byte { return []byte("p:" + h.String()) }

// PutBlob writes a blob from r: it is hashed on its way to a temp file and
// committed only if it has size bytes (size < 0: any) that hash to h. A
// blob already committed is left alone (r is not read).
func (s *Store) PutBlob(h v1.Hash, size int64, r io.Reader) error {
	dst := s.blobPath(h)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	hasher, err := v1.Hasher(h.Algorithm)
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	room, err := s.reserve(size)
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	defer room.release()
	tmp, err := os.CreateTemp(s.tier.TempDir(), h.Hex+"-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone once placed; left only by a failure
	defer tmp.Close()
	n, err := io.Copy(io.MultiWriter(tmp, hasher), r)
	err = noSpace(err)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("%w: blob %s has %d bytes, want %d", ErrSizeMismatch, h, n, size)
	}
	if got := fmt.Sprintf("%x", hasher.Sum(nil)); err == nil && got != h.Hex {
		err = fmt.Errorf("%w: blob %s hashes to %s:%s", ErrDigestMismatch, h, h.Algorithm, got)
	}
	if err != nil {
		return err
	}
	if err := s.tier.Place(tmp, h); err != nil && !errors.Is(err, blobs.ErrExists) {
		return noSpace(err)
	}
	if err := s.recordBlob(h); err != nil {
		s.log.Warn("record blob file", "digest", h.String(), "err", err)
	}
	return s.putBlobSize(h, n)
}

// ImportImage commits imported manifests (an index and its image
// manifests, or one image manifest) in one index transaction: each
// manifest's record, links from repo to it and everything it references,
// the tags (pointing at the first manifest), and a pin on every digest so
// expiry never removes them. Every blob and child manifest they reference
// must already be committed; manifests are written here. Either all of it
// lands or none of it does.
func (s *Store) ImportImage(repo Repo, tags []string, manifests []*Manifest, at time.Time) error {
	if len(manifests) == 0 {
		return errors.New("import: no manifest")
	}
	for _, m := range manifests {
		if err := s.PutBlob(m.Digest, int64(len(m.Bytes)), bytes.NewReader(m.Bytes)); err != nil {
			return fmt.Errorf("import manifest %s: %w", m.Digest, err)
		}
	}
	for _, m := range manifests {
		for _, d := range m.Refs {
			if !s.HasBlob(d.Digest) {
				return fmt.Errorf("import %s: %s references %s, which is not in the store", repo, m.Digest, d.Digest)
			}
		}
	}
	s.eviction.guard.phase.RLock()
	defer s.eviction.guard.phase.RUnlock()
	s.eviction.guard.note(manifests...)
	var unpinned map[dkey]v1.Hash
	err := s.update(func(txn *badger.Txn) error {
		for _, m := range manifests {
			if err := importManifest(txn, repo, m); err != nil {
				return err
			}
		}
		moved := map[dkey]v1.Hash{}
		for _, tag := range tags {
			var old Tag
			if readJSON(txn, tagKey(repo, tag), &old) == nil && old.Digest != manifests[0].Digest {
				moved[keyOf(old.Digest)] = old.Digest
			}
			if err := s.setTag(txn, repo, tag, Tag{Digest: manifests[0].Digest, Confirmed: at}); err != nil {
				return err
			}
		}
		unpinned = moved
		return unpinUntagged(txn, moved)
	})
	if err != nil {
		return fmt.Errorf("import %s: %w", repo, err)
	}
	s.graph.change(func(g *graph) {
		for _, m := range manifests {
			g.putNode(m)
			g.setPin(m.Digest, true)
		}
		for _, tag := range tags {
			g.setTag(TagRef{Repo: repo, Tag: tag}, keyOf(manifests[0].Digest))
		}
		for _, h := range unpinned {
			g.setPin(h, false)
		}
	})
	for _, tag := range tags {
		s.hotTag.Add(hotTagKey(repo, tag), Tag{Digest: manifests[0].Digest, Confirmed: at})
	}
	// No access time: importing is not pulling (an unpinned image nobody
	// pulled is the first to go).
	return nil
}

// unpinUntagged drops the import's pin of each image an import moved a
// tag away from, once no tag names it: the pin kept what was uploaded
// under that name, and a tag imported again and again (app:latest from a
// nightly build) must not pin every build it ever named. The image then
// goes by least recent use like a pulled one; its digest stays in the
// tag's history, pullable until evicted. Pins by name or pattern (Pin)
// are patterns, not these keys, and stay.
func unpinUntagged(txn *badger.Txn, moved map[dkey]v1.Hash) error {
	if len(moved) == 0 {
		return nil
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("t:"), PrefetchValues: true, PrefetchSize: 100})
	for it.Rewind(); it.Valid() && len(moved) > 0; it.Next() {
		_ = it.Item().Value(func(b []byte) error {
			if k, ok := tagTarget(b); ok {
				delete(moved, k)
			}
			return nil
		})
	}
	it.Close()
	for _, h := range moved {
		if err := txn.Delete(pinKey(h)); err != nil {
			return err
		}
	}
	return nil
}

func importManifest(txn *badger.Txn, repo Repo, m *Manifest) error {
	if err := setJSON(txn, manifestKey(m.Digest), m.record()); err != nil {
		return err
	}
	for _, h := range append([]v1.Hash{m.Digest}, refDigests(m)...) {
		if err := txn.Set(linkKey(repo, h), nil); err != nil {
			return err
		}
		if err := txn.Set(pinKey(h), nil); err != nil {
			return err
		}
	}
	for _, d := range m.Refs {
		if err := setJSON(txn, blobKey(d.Digest), blobRecord{Size: d.Size}); err != nil {
			return err
		}
	}
	return nil
}

func refDigests(m *Manifest) []v1.Hash {
	out := make([]v1.Hash, 0, len(m.Refs))
	for _, d := range m.Refs {
		out = append(out, d.Digest)
	}
	return out
}

// Tags calls fn for every tag in the store, in key order, stopping at the
// first error fn returns.
func (s *Store) Tags(fn func(repo Repo, tag string, t Tag) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		prefix := []byte("t:")
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			repo, tag, ok := parseTagKey(string(it.Item().Key()))
			if !ok {
				continue
			}
			var t Tag
			if err := readJSON(txn, it.Item().KeyCopy(nil), &t); err != nil {
				return err
			}
			if err := fn(repo, tag, t); err != nil {
				return err
			}
		}
		return nil
	})
}

// RepoTags calls fn with every tag of repo the store knows, sorted.
func (s *Store) RepoTags(repo Repo, fn func(tag string)) error {
	prefix := []byte("t:" + repo.String() + ":")
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if tag := string(it.Item().Key()[len(prefix):]); !strings.Contains(tag, "/") {
				fn(tag)
			}
		}
		return nil
	})
}

// parseTagKey splits "t:<registry>/<name>:<tag>"; a tag has no ':' and a
// registry no '/', so the split is unambiguous even with a port.
func parseTagKey(k string) (Repo, string, bool) {
	rest := strings.TrimPrefix(k, "t:")
	i := strings.LastIndex(rest, ":")
	j := strings.Index(rest, "/")
	if i < 0 || j < 0 || j > i {
		return Repo{}, "", false
	}
	return Repo{Registry: rest[:j], Name: rest[j+1 : i]}, rest[i+1:], true
}
