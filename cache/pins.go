package cache

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pinPatternKey stores a pin set with Pin: a full image name
// ("docker.io/library/golang:1.22"), a pattern ("docker.io/library/golang:*")
// or a name by digest ("docker.io/library/golang@sha256:…").
//
//	P:<pattern>
func pinPatternKey(p string) []byte { return []byte("P:" + p) }

// ValidPinPattern checks a pin pattern: registry/repository followed by
// :TAG or @DIGEST, where the name and tag may use path.Match wildcards.
func ValidPinPattern(p string) error {
	name, ref, ok := splitPin(p)
	if !ok || !strings.Contains(name, "/") {
		return fmt.Errorf("pin %q: want REGISTRY/REPOSITORY:TAG or @DIGEST (wildcards allowed: docker.io/library/golang:*)", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("pin %q: %v", p, err)
	}
	if strings.HasPrefix(ref, "@") {
		if _, err := v1.NewHash(ref[1:]); err != nil {
			return fmt.Errorf("pin %q: %v", p, err)
		}
	}
	return nil
}

// splitPin splits "reg/repo:tag" or "reg/repo@digest" into the name and
// ":tag"/"@digest".
func splitPin(p string) (string, string, bool) {
	if i := strings.Index(p, "@"); i >= 0 {
		return p[:i], p[i:], true
	}
	slash := strings.Index(p, "/")
	i := strings.LastIndex(p, ":")
	if slash < 0 || i < slash {
		return "", "", false
	}
	return p[:i], p[i:], true
}

func matchPin(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// pinPatterns are the configured patterns and those stored by Pin.
func (s *Store) pinPatterns() []string {
	out := slices.Clone(s.opts.Pins)
	_ = s.db.View(func(txn *badger.Txn) error {
		opts := badger.IteratorOptions{Prefix: []byte("P:")}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, string(it.Item().Key()[2:]))
		}
		return nil
	})
	return out
}

// Pins are the pin patterns: configured (Options.Pins) and stored with Pin.
func (s *Store) Pins() (configured, stored []string) {
	all := s.pinPatterns()
	return all[:len(s.opts.Pins)], all[len(s.opts.Pins):]
}

// Pin keeps every image matching pattern from eviction, now and whenever
// a matching image is cached later.
func (s *Store) Pin(pattern string) error {
	if err := ValidPinPattern(pattern); err != nil {
		return err
	}
	return s.update(func(txn *badger.Txn) error { return txn.Set(pinPatternKey(pattern), nil) })
}

// ErrNotPinned says Unpin found nothing to unpin.
var ErrNotPinned = errors.New("not pinned")

// Unpin removes a pin set with Pin and, for a name that an import pinned,
// the import's pin of the digest the tag points to. A configured pattern
// cannot be removed here.
func (s *Store) Unpin(pattern string) error {
	if slices.Contains(s.opts.Pins, pattern) {
		return fmt.Errorf("pin %q is in the configuration (pin:); remove it there", pattern)
	}
	found := false
	var unpinned *v1.Hash
	err := s.update(func(txn *badger.Txn) error {
		unpinned = nil
		if _, err := txn.Get(pinPatternKey(pattern)); err == nil {
			found = true
			if err := txn.Delete(pinPatternKey(pattern)); err != nil {
				return err
			}
		}
		h, ok := s.pinnedDigestOf(txn, pattern)
		if !ok {
			return nil
		}
		if _, err := txn.Get(pinKey(h)); err == nil {
			found = true
			unpinned = &h
			return txn.Delete(pinKey(h))
		}
		return nil
	})
	if err == nil && unpinned != nil {
		s.graph.change(func(g *graph) { g.setPin(*unpinned, false) })
	}
	if err == nil && !found {
		return fmt.Errorf("%w: %s", ErrNotPinned, pattern)
	}
	s.eviction.futile.record(false, 0) // there may be something to evict now
	return err
}

// pinnedDigestOf resolves "reg/repo:tag" or "reg/repo@digest" to a digest.
func (s *Store) pinnedDigestOf(txn *badger.Txn, name string) (v1.Hash, bool) {
	n, ref, ok := splitPin(name)
	if !ok {
		return v1.Hash{}, false
	}
	if d, ok := strings.CutPrefix(ref, "@"); ok {
		h, err := v1.NewHash(d)
		return h, err == nil
	}
	reg, repo, ok := strings.Cut(n, "/")
	if !ok {
		return v1.Hash{}, false
	}
	var t Tag
	if err := readJSON(txn, tagKey(Repo{Registry: reg, Name: repo}, ref[1:]), &t); err != nil {
		return v1.Hash{}, false
	}
	return t.Digest, true
}

// Pinned reports whether h was pinned by digest (imported content, or
// pinned by name@digest).
func (s *Store) Pinned(h v1.Hash) bool {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(pinKey(h))
		return err
	})
	return err == nil || matchPinDigest(s.pinPatterns(), h)
}

// PinnedAs reports whether the image h, named tag of r (tag may be
// empty), is pinned: by digest, or by a pattern matching the name.
func (s *Store) PinnedAs(r Repo, tag string, h v1.Hash) bool {
	if s.Pinned(h) {
		return true
	}
	patterns := s.pinPatterns()
	if tag != "" && matchPin(patterns, r.String()+":"+tag) {
		return true
	}
	return matchPin(patterns, r.String()+"@"+h.String())
}
