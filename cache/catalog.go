package cache

import (
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Repositories returns, sorted, the repositories of registry that the
// store has content for: every repository linked to a manifest or blob
// (fetched, prefetched or imported). It reads link keys only, one seek
// per repository, not one read per link.
func (s *Store) Repositories(registry string) ([]string, error) {
	prefix := []byte("l:" + registry + "/")
	var names []string
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); {
			rest := string(it.Item().Key()[len(prefix):])
			name, _, ok := strings.Cut(rest, "@")
			if !ok || name == "" {
				it.Next()
				continue
			}
			names = append(names, name)
			// Past every link of this repository: '@' + 0xff sorts after
			// any digest.
			it.Seek(append(append(append([]byte{}, prefix...), name...), '@', 0xff))
		}
		return nil
	})
	// Keys sort "a/b@" before "a@" ('/' < '@'); the catalog is lexical.
	sort.Strings(names)
	return names, err
}
