package cache

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HistoryLimit bounds the digests remembered per tag.
const HistoryLimit = 50

// historyKey holds every digest a tag pointed to, newest first, like the
// reference registry's per-tag index/ directory.
//
//	th:<repo>:<tag>   JSON []HistoryEntry
func historyKey(r Repo, tag string) []byte { return []byte("th:" + r.String() + ":" + tag) }

// HistoryEntry is one digest a tag pointed to, and when it was first and
// last seen pointing there.
type HistoryEntry struct {
	Digest v1.Hash   `json:"digest"`
	First  time.Time `json:"first_seen"`
	Last   time.Time `json:"last_seen"`
}

// setTag writes a tag and, when it moves (or is new), its history. A
// confirmation of the same digest writes the tag only: the current
// digest's last sighting is the tag's Confirmed time, so tag churn costs
// no history write.
func (s *Store) setTag(txn *badger.Txn, r Repo, tag string, t Tag) error {
	var old Tag
	oerr := readJSON(txn, tagKey(r, tag), &old)
	if oerr == nil && old.Digest == t.Digest {
		return setJSON(txn, tagKey(r, tag), t)
	}
	var hist []HistoryEntry
	if err := readJSON(txn, historyKey(r, tag), &hist); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if oerr == nil {
		hist = sighted(hist, old.Digest, old.Confirmed)
	}
	hist = sighted(hist, t.Digest, t.Confirmed)
	if err := setJSON(txn, historyKey(r, tag), hist); err != nil {
		return err
	}
	return setJSON(txn, tagKey(r, tag), t)
}

// sighted records that the tag pointed at h at time at: the newest entry
// is extended if it is h, else a new entry goes first.
func sighted(hist []HistoryEntry, h v1.Hash, at time.Time) []HistoryEntry {
	if len(hist) > 0 && hist[0].Digest == h {
		hist[0].Last = maxTime(hist[0].Last, at)
		hist[0].First = minTime(hist[0].First, at)
		return hist
	}
	hist = append([]HistoryEntry{{Digest: h, First: at, Last: at}}, hist...)
	return hist[:min(len(hist), HistoryLimit)]
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// History returns every digest tag of r pointed to, newest first.
func (s *Store) History(r Repo, tag string) ([]HistoryEntry, error) {
	var hist []HistoryEntry
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		hist, err = readHistory(txn, r, tag)
		return err
	})
	if err == nil && len(hist) == 0 {
		err = ErrNotFound
	}
	return hist, err
}

func readHistory(txn *badger.Txn, r Repo, tag string) ([]HistoryEntry, error) {
	var hist []HistoryEntry
	if err := readJSON(txn, historyKey(r, tag), &hist); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	var cur Tag
	if err := readJSON(txn, tagKey(r, tag), &cur); err == nil {
		hist = sighted(hist, cur.Digest, cur.Confirmed)
	}
	return hist, nil
}

// RepoHistory returns the history of every tag of r the store remembers,
// tags that are gone included.
func (s *Store) RepoHistory(r Repo) (map[string][]HistoryEntry, error) {
	out := map[string][]HistoryEntry{}
	prefix := historyKey(r, "")
	err := s.db.View(func(txn *badger.Txn) error {
		var tags []string
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		for it.Rewind(); it.Valid(); it.Next() {
			if tag := string(it.Item().Key()[len(prefix):]); !strings.Contains(tag, "/") {
				tags = append(tags, tag)
			}
		}
		it.Close()
		for _, tag := range tags {
			hist, err := readHistory(txn, r, tag)
			if err != nil {
				return err
			}
			out[tag] = hist
		}
		return nil
	})
	return out, err
}

// MergeHistory adds entries (from an imported bundle) to the history of
// tag of r: sightings of the same digest are joined, and the newest
// HistoryLimit are kept.
func (s *Store) MergeHistory(r Repo, tag string, entries []HistoryEntry) error {
	return s.update(func(txn *badger.Txn) error {
		var hist []HistoryEntry
		if err := readJSON(txn, historyKey(r, tag), &hist); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		for _, e := range entries {
			i := slices.IndexFunc(hist, func(h HistoryEntry) bool { return h.Digest == e.Digest })
			if i < 0 {
				hist = append(hist, e)
				continue
			}
			hist[i].First = minTime(hist[i].First, e.First)
			hist[i].Last = maxTime(hist[i].Last, e.Last)
		}
		slices.SortStableFunc(hist, func(a, b HistoryEntry) int { return b.Last.Compare(a.Last) })
		return setJSON(txn, historyKey(r, tag), hist[:min(len(hist), HistoryLimit)])
	})
}
