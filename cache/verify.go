package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Repair quarantines corrupt files (to <data>/quarantine/) and removes
	// the records that point at nothing, so the next request refetches.
	Repair bool
	// Progress, when set, is called as files are hashed with the bytes
	// done and the bytes to do (an estimate: the recorded total).
	Progress func(done, total int64)
}

// VerifyReport counts what Verify found. The first group is wrong (the
// store is not sound until it is repaired); the second is how a pull-
// through cache normally looks and is reported for information.
type VerifyReport struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`

	// Corrupt files do not hash to their name.
	Corrupt []string `json:"corrupt,omitempty"`
	// Stray files under blobs/ are not named by a digest.
	Stray []string `json:"stray,omitempty"`
	// MissingFiles are blob records whose file is gone.
	MissingFiles int `json:"missing_files"`
	// Unrecorded files have no blob record (not counted in the bound).
	Unrecorded int `json:"unrecorded"`
	// DanglingManifests are manifest records whose bytes are gone.
	DanglingManifests int `json:"dangling_manifests"`
	// DanglingTags point at a manifest the index does not hold.
	DanglingTags int `json:"dangling_tags"`
	// TempFiles are leftovers of fills no longer running.
	TempFiles int `json:"temp_files"`

	// Orphans are files no manifest references (swept after the grace
	// period).
	Orphans int `json:"orphans"`
	// Incomplete are image manifests with blobs not cached (fetched when a
	// client asks).
	Incomplete int `json:"incomplete"`
	// DanglingLinks are repository links to digests nothing holds or
	// references.
	DanglingLinks int `json:"dangling_links"`

	// Repaired says Repair was asked and done; Quarantined lists the paths
	// corrupt files were moved to.
	Repaired    bool     `json:"repaired"`
	Quarantined []string `json:"quarantined,omitempty"`
}

// Clean reports whether nothing is wrong.
func (r VerifyReport) Clean() bool {
	return len(r.Corrupt) == 0 && len(r.Stray) == 0 && r.MissingFiles == 0 && r.Unrecorded == 0 &&
		r.DanglingManifests == 0 && r.DanglingTags == 0 && r.TempFiles == 0
}

// Verify hashes every blob file against its name and checks every index
// record against the files.
func (s *Store) Verify(opts VerifyOptions) (VerifyReport, error) {
	<-s.use.scanned
	v := &verifier{s: s, opts: opts, recorded: map[dkey]bool{}}
	if err := v.hashFiles(); err != nil {
		return v.rep, err
	}
	g, err := s.loadGraph(false)
	if err != nil {
		return v.rep, err
	}
	v.g = g
	if err := s.db.View(func(txn *badger.Txn) error { return v.checkIndex(txn, g) }); err != nil {
		return v.rep, err
	}
	v.checkTemp()
	if opts.Repair {
		// Not during a pass: a pass deletes the records it read without
		// reading them again.
		s.eviction.mu.Lock()
		err := v.repair()
		s.eviction.mu.Unlock()
		if err != nil {
			return v.rep, err
		}
		v.rep.Repaired = true
	}
	s.metrics.verify.WithLabelValues("corrupt").Set(float64(len(v.rep.Corrupt)))
	s.metrics.verify.WithLabelValues("dangling").Set(float64(v.rep.MissingFiles + v.rep.DanglingManifests + v.rep.DanglingTags))
	s.metrics.verify.WithLabelValues("orphans").Set(float64(v.rep.Orphans))
	s.metrics.verify.WithLabelValues("temp").Set(float64(v.rep.TempFiles))
	return v.rep, nil
}

type verifier struct {
	s    *Store
	opts VerifyOptions
	rep  VerifyReport
	g    *graph
	mu   sync.Mutex
	// files are the digests with a file; recorded those with an f: record.
	files     map[dkey]v1.Hash
	recorded  map[dkey]bool
	corrupt   []v1.Hash
	stray     []string
	missing   []v1.Hash
	unrec     []v1.Hash
	danglingM []v1.Hash
	danglingT []TagRef
	links     [][]byte
	temps     []string
}

// hashFiles hashes every file, two at a time.
func (v *verifier) hashFiles() error {
	v.files = map[dkey]v1.Hash{}
	total := v.s.use.blobs.Load()
	var done atomic.Int64
	work := make(chan v1.Hash)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				n, ok := v.s.hashFile(h)
				v.mu.Lock()
				v.rep.Files++
				v.rep.Bytes += n
				if !ok {
					v.corrupt = append(v.corrupt, h)
					v.rep.Corrupt = append(v.rep.Corrupt, h.String())
				}
				if v.opts.Progress != nil {
					v.opts.Progress(done.Add(n), max(total, done.Load()))
				}
				v.mu.Unlock()
			}
		}()
	}
	err := v.s.walkBlobFiles(func(h v1.Hash, _ string) {
		v.files[keyOf(h)] = h
		work <- h
	}, func(p string) {
		v.stray = append(v.stray, p)
		v.rep.Stray = append(v.rep.Stray, p)
	})
	close(work)
	wg.Wait()
	return err
}

// hashFile reports the file's size and whether it hashes to h.
func (s *Store) hashFile(h v1.Hash) (int64, bool) {
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		return 0, !errors.Is(err, os.ErrNotExist) // evicted meanwhile: not corrupt
	}
	defer f.Close()
	hasher, err := v1.Hasher(h.Algorithm)
	if err != nil {
		return 0, false
	}
	n, err := io.Copy(hasher, f)
	if err != nil {
		return n, false
	}
	return n, fmt.Sprintf("%x", hasher.Sum(nil)) == h.Hex
}

func (v *verifier) checkIndex(txn *badger.Txn, g *graph) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("f:")})
	for it.Rewind(); it.Valid(); it.Next() {
		h, err := v1.NewHash(string(it.Item().Key()[2:]))
		if err != nil {
			continue
		}
		k := keyOf(h)
		v.recorded[k] = true
		if _, ok := v.files[k]; !ok && !v.s.HasBlob(h) {
			v.missing = append(v.missing, h)
		}
		if _, ok := g.refs(k); !ok {
			v.rep.Orphans++
		}
	}
	it.Close()
	for k, h := range v.files {
		if !v.recorded[k] && v.s.HasBlob(h) {
			v.unrec = append(v.unrec, h)
		}
	}
	v.rep.MissingFiles, v.rep.Unrecorded = len(v.missing), len(v.unrec)
	for k, n := range g.nodes {
		if h := g.hashOf(k); !has(v.files, k) && !v.s.HasBlob(h) {
			v.danglingM = append(v.danglingM, h)
			v.danglingT = append(v.danglingT, n.tags...)
			continue
		}
		if !n.isIndex() && slicesAny(n.refs, func(r gref) bool { _, ok := v.files[r.k]; return !ok }) {
			v.rep.Incomplete++
		}
	}
	v.rep.DanglingManifests = len(v.danglingM)
	if err := v.danglingTags(g); err != nil {
		return err
	}
	v.rep.DanglingTags = len(v.danglingT)
	return v.danglingLinks(txn, g)
}

func has[K comparable, V any](m map[K]V, k K) bool {
	_, found := m[k]
	return found
}

func slicesAny[T any](s []T, f func(T) bool) bool {
	for _, x := range s {
		if f(x) {
			return true
		}
	}
	return false
}

// danglingTags finds tags that point at no manifest record.
func (v *verifier) danglingTags(g *graph) error {
	return v.s.Tags(func(r Repo, tag string, t Tag) error {
		if g.nodes[keyOf(t.Digest)] == nil {
			v.danglingT = append(v.danglingT, TagRef{Repo: r, Tag: tag})
		}
		return nil
	})
}

func (v *verifier) danglingLinks(txn *badger.Txn, g *graph) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("l:")})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		key := string(it.Item().Key())
		i := strings.LastIndexByte(key, '@')
		if i < 0 {
			continue
		}
		h, err := v1.NewHash(key[i+1:])
		if err != nil {
			continue
		}
		k := keyOf(h)
		_, ref := g.refs(k)
		_, file := v.files[k]
		if !ref && !file && !v.s.fillInFlight(h) {
			v.links = append(v.links, it.Item().KeyCopy(nil))
		}
	}
	v.rep.DanglingLinks = len(v.links)
	return nil
}

// checkTemp counts temp files of fills no longer running.
func (v *verifier) checkTemp() {
	dir := filepath.Join(v.s.dir, "tmp")
	names, _ := readDirNames(dir)
	cutoff := time.Now().Add(-v.s.opts.FillTimeout)
	for _, n := range names {
		hex, _, _ := strings.Cut(n, "-")
		if v.s.fillInFlight(v1.Hash{Algorithm: "sha256", Hex: hex}) {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && fi.ModTime().After(cutoff) {
			continue // a write in progress (an import's blob)
		}
		v.temps = append(v.temps, filepath.Join(dir, n))
	}
	v.rep.TempFiles = len(v.temps)
}

// repair fixes what verify found: corrupt files go to quarantine/ with
// their records (a corrupt manifest's record too), records of missing
// files and manifests are removed, unrecorded files recorded, dangling
// tags and links removed, leftover temp files deleted.
func (v *verifier) repair() error {
	s := v.s
	q := filepath.Join(s.dir, "quarantine")
	if len(v.corrupt)+len(v.stray) > 0 {
		if err := os.MkdirAll(q, 0o750); err != nil {
			return err
		}
	}
	var keys [][]byte
	for _, h := range v.corrupt {
		dst := filepath.Join(q, h.Algorithm+"-"+h.Hex)
		if err := os.Rename(s.blobPath(h), dst); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("quarantine %s: %w", h, err)
		}
		s.files.drop(h) // no warm request may be served the corrupt bytes from a kept descriptor
		v.rep.Quarantined = append(v.rep.Quarantined, dst)
		keys = append(keys, manifestKey(h))
		s.hotMan.Remove(h)
		if n := v.g.nodes[keyOf(h)]; n != nil {
			v.danglingT = append(v.danglingT, n.tags...)
		}
	}
	if err := s.unrecordBlobs(append(v.corrupt, v.missing...)); err != nil {
		return err
	}
	for _, h := range v.unrec {
		if err := s.recordBlob(h); err != nil {
			return err
		}
	}
	for _, h := range v.danglingM {
		keys = append(keys, manifestKey(h))
		s.hotMan.Remove(h)
	}
	for _, t := range v.danglingT {
		keys = append(keys, tagKey(t.Repo, t.Tag))
		s.hotTag.Remove(hotTagKey(t.Repo, t.Tag))
	}
	keys = append(keys, v.links...)
	if len(v.links) > 0 {
		s.hotLink.Purge()
	}
	for _, p := range v.stray {
		if err := os.Rename(p, filepath.Join(q, "stray-"+filepath.Base(p))); err == nil {
			v.rep.Quarantined = append(v.rep.Quarantined, filepath.Join(q, "stray-"+filepath.Base(p)))
		}
	}
	for _, p := range v.temps {
		os.Remove(p)
	}
	if err := s.deleteKeys(keys); err != nil {
		return err
	}
	s.graph.change(func(g *graph) {
		for _, h := range append(v.corrupt, v.danglingM...) {
			g.deleteNode(keyOf(h))
		}
		for _, t := range v.danglingT {
			g.deleteTag(t)
		}
	})
	return nil
}
