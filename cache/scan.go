package cache

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// startScan counts the blob records of the index into the running total
// and reconciles them with the files, in the background, so that start-up
// does not wait for a million records. The snapshot is taken now, before
// any write of this process: every commit after it moves the total by
// itself (recordBlob), so snapshot sum + later moves is exact. Eviction
// and admission wait for the scan.
func (s *Store) startScan() {
	txn := s.db.NewTransaction(false)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.use.scanned)
		defer txn.Discard()
		// After the graph is read: the two large reads of the index do not
		// hold their memory at the same time.
		select {
		case <-s.graph.loaded:
		case <-s.stop:
			return
		}
		s.reconcile(txn)
		releaseIndexPages(filepath.Join(s.dir, "index"))
	}()
}

// reconcile sums the snapshot's f: records into the total, records blob
// files the index does not know (a crash between a commit's rename and
// its record, or a crash mid-eviction) and forgets records whose file is
// gone. The records and the files are both walked in digest order and
// merged as they go: nothing of the million is held in memory.
func (s *Store) reconcile(txn *badger.Txn) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("f:"), PrefetchValues: true, PrefetchSize: 1000})
	defer it.Close()
	it.Rewind()
	var sum int64
	var unknown []v1.Hash // files without a record
	var missing []v1.Hash // records whose file the walk did not see
	rel := s.pageReleaser()
	// advance moves past the records before digest d (all, when d is
	// empty), summing them; it reports whether d itself is recorded.
	advance := func(d string) bool {
		for ; it.Valid(); it.Next() {
			rel.read()
			key := string(it.Item().Key()[2:])
			if d != "" && key > d {
				return false
			}
			_ = it.Item().Value(func(b []byte) error { sum += parseFileRecord(b).alloc; return nil })
			if key == d {
				it.Next()
				return true
			}
			if h, err := v1.NewHash(key); err == nil {
				missing = append(missing, h)
			}
		}
		return false
	}
	err := s.walkBlobs(func(h v1.Hash, _ string) {
		if !advance(h.String()) {
			unknown = append(unknown, h)
		}
	})
	advance("")
	s.use.blobs.Add(sum)
	if err != nil {
		s.log.Warn("scan blobs", "err", err)
		return
	}
	if s.stopping() {
		return
	}
	s.fixRecords(unknown, missing)
}

// fixRecords records the unknown files and forgets the records of missing
// ones (confirmed gone now: a fill may have committed one since the walk).
func (s *Store) fixRecords(unknown, missing []v1.Hash) {
	var fixed, dropped int
	for _, h := range unknown {
		if err := s.recordBlob(h); err == nil {
			fixed++
		}
	}
	var gone []v1.Hash
	for _, h := range missing {
		if _, err := os.Stat(s.blobPath(h)); os.IsNotExist(err) {
			gone = append(gone, h)
		}
	}
	if err := s.unrecordBlobs(gone); err == nil {
		dropped = len(gone)
	}
	if fixed > 0 || dropped > 0 {
		s.log.Info("reconciled blob records with files", "recorded", fixed, "forgotten", dropped)
	}
}

// walkBlobs calls fn for every file under blobs/ whose path is a digest,
// in order. Files that are not named by a digest are passed to stray, if
// set.
func (s *Store) walkBlobs(fn func(h v1.Hash, path string)) error {
	return s.walkBlobFiles(fn, nil)
}

func (s *Store) walkBlobFiles(fn func(h v1.Hash, path string), stray func(path string)) error {
	root := filepath.Join(s.dir, "blobs")
	algs, err := readDirNames(root)
	if err != nil {
		return err
	}
	for _, alg := range algs {
		prefixes, err := readDirNames(filepath.Join(root, alg))
		if err != nil {
			if stray != nil {
				stray(filepath.Join(root, alg))
			}
			continue
		}
		for _, pre := range prefixes {
			dir := filepath.Join(root, alg, pre)
			names, err := readDirNames(dir)
			if err != nil {
				if stray != nil {
					stray(dir)
				}
				continue
			}
			for _, n := range names {
				p := filepath.Join(dir, n)
				h, err := v1.NewHash(alg + ":" + n)
				if err != nil || !strings.HasPrefix(n, pre) {
					if stray != nil {
						stray(p)
					}
					continue
				}
				if s.stopping() {
					return nil
				}
				fn(h, p)
			}
		}
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

func (s *Store) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}
