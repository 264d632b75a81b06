package cache

import (
	"encoding/hex"
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
		recorded := s.sumRecords(txn)
		txn.Discard()
		if s.stopping() {
			return
		}
		read := len(recorded.m)
		s.reconcile(recorded)
		returnMemory(read)
	}()
}

// sumRecords adds the snapshot's f: records to the total and returns the
// digests recorded, sorted.
func (s *Store) sumRecords(txn *badger.Txn) *digestSet {
	recorded := newDigestSet()
	var sum int64
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("f:"), PrefetchValues: true, PrefetchSize: 1000})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		_ = it.Item().Value(func(b []byte) error { sum += parseFileRecord(b).alloc; return nil })
		if h, err := v1.NewHash(string(it.Item().Key()[2:])); err == nil {
			recorded.add(h)
		}
	}
	s.use.blobs.Add(sum)
	return recorded
}

// reconcile records blob files the index does not know (a crash between
// a commit's rename and its record, or a crash mid-eviction) and forgets
// records whose file is gone.
func (s *Store) reconcile(recorded *digestSet) {
	var fixed, dropped int
	err := s.walkBlobs(func(h v1.Hash, path string) {
		if recorded.remove(h) {
			return
		}
		if err := s.recordBlob(h); err == nil {
			fixed++
		}
	})
	if err != nil {
		s.log.Warn("scan blobs", "err", err)
		return
	}
	var gone []v1.Hash
	for _, h := range recorded.hashes() {
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

// digestSet is a set of digests in 32 bytes each (a v1.Hash is two
// strings; a large cache has a million blobs).
type digestSet struct {
	m     map[dkey]struct{}
	other map[dkey]v1.Hash // digests that are not sha256
}

func newDigestSet() *digestSet {
	return &digestSet{m: map[dkey]struct{}{}, other: map[dkey]v1.Hash{}}
}

func (d *digestSet) add(h v1.Hash) {
	k := keyOf(h)
	d.m[k] = struct{}{}
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		d.other[k] = h
	}
}

// remove reports whether h was in the set.
func (d *digestSet) remove(h v1.Hash) bool {
	k := keyOf(h)
	_, ok := d.m[k]
	delete(d.m, k)
	return ok
}

func (d *digestSet) hashes() []v1.Hash {
	out := make([]v1.Hash, 0, len(d.m))
	for k := range d.m {
		if h, ok := d.other[k]; ok {
			out = append(out, h)
			continue
		}
		out = append(out, v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(k[:])})
	}
	return out
}
