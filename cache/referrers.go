package cache

import (
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// referrersKey is the index key of a subject's referrers list in a
// repository: rf:<repo>@<digest>.
func referrersKey(r Repo, subject v1.Hash) []byte {
	return []byte("rf:" + r.String() + "@" + subject.String())
}

type referrersRecord struct {
	Manifests []v1.Descriptor `json:"m"`
	Fetched   time.Time       `json:"f"`
}

// PutReferrers records the referrers of subject in r as the upstream
// listed them, and when.
func (s *Store) PutReferrers(r Repo, subject v1.Hash, refs []v1.Descriptor, at time.Time) error {
	err := s.update(func(txn *badger.Txn) error {
		return setJSON(txn, referrersKey(r, subject), referrersRecord{Manifests: nonNil(refs), Fetched: at})
	})
	if err != nil {
		return fmt.Errorf("index referrers of %s: %w", subject, err)
	}
	s.graph.change(func(g *graph) { g.addReferrers(keyOf(subject), refs) })
	return nil
}

// AddReferrers adds referrers of subject in r to those already recorded
// (an import), keeping one entry per digest, and marks the list as known
// at time at.
func (s *Store) AddReferrers(r Repo, subject v1.Hash, refs []v1.Descriptor, at time.Time) error {
	err := s.update(func(txn *badger.Txn) error {
		var rec referrersRecord
		if err := readJSON(txn, referrersKey(r, subject), &rec); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		seen := map[v1.Hash]bool{}
		for _, d := range rec.Manifests {
			seen[d.Digest] = true
		}
		for _, d := range refs {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				rec.Manifests = append(rec.Manifests, d)
			}
		}
		rec.Manifests, rec.Fetched = nonNil(rec.Manifests), at
		return setJSON(txn, referrersKey(r, subject), rec)
	})
	if err != nil {
		return fmt.Errorf("index referrers of %s: %w", subject, err)
	}
	s.graph.change(func(g *graph) { g.addReferrers(keyOf(subject), refs) })
	return nil
}

// Referrers returns the last known referrers of subject in r and when
// they were fetched; ErrNotFound when none was ever recorded.
func (s *Store) Referrers(r Repo, subject v1.Hash) ([]v1.Descriptor, time.Time, error) {
	var rec referrersRecord
	if err := s.getJSON(referrersKey(r, subject), &rec); err != nil {
		return nil, time.Time{}, err
	}
	return nonNil(rec.Manifests), rec.Fetched, nil
}

func nonNil(ds []v1.Descriptor) []v1.Descriptor {
	if ds == nil {
		return []v1.Descriptor{}
	}
	return ds
}
