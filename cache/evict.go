package cache

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Eviction works on images, in the order its policy gives
// (eviction.order, in eviction.go: least recently used first), and is mark
// and sweep: a pass marks on the graph in memory which digests each image
// reaches, removes the references of the images it evicts (their
// manifest records, tags, access times) and only then deletes the blobs
// that no remaining manifest references. A blob with a fill in flight is
// never deleted; a blob a reader has open is unlinked, and the reader
// finishes from its open file (Linux keeps the data until the last close).

// GCReport says what an eviction or sweep pass freed, or would free.
type GCReport struct {
	DryRun bool `json:"dry_run"`
	// Images are the names of the images evicted (tags, or the digest of
	// an untagged image).
	Images []string `json:"images"`
	// Evicted counts the images evicted; Blobs the files deleted with them.
	Evicted int `json:"evicted"`
	Blobs   int `json:"blobs"`
	// Orphans are files no manifest referenced, older than the grace period.
	Orphans int `json:"orphans"`
	// Freed is the allocated bytes of every file deleted.
	Freed int64 `json:"freed"`
	// Pinned is what pinned images occupy; PinnedOverBound says it is more
	// than the bound, which eviction cannot fix.
	Pinned          int64 `json:"pinned"`
	PinnedOverBound bool  `json:"pinned_over_bound,omitempty"`
	// Usage is measured after the pass.
	Usage Usage `json:"usage"`
}

// evictRequest is what one pass is asked to do.
type evictRequest struct {
	// need is how many bytes to free by evicting LRU images.
	need int64
	// targets, when set, are the roots to evict (rm), whatever need says.
	targets func(g *graph) []*mnode
	// sweep also deletes orphans older than the grace period.
	sweep  bool
	dryRun bool
}

// refGuard remembers the digests that manifests stored during a pass
// reference, so the pass does not delete a blob that became referenced
// after its mark.
type refGuard struct {
	phase  sync.RWMutex // held for reading while a manifest is indexed
	mu     sync.Mutex
	active bool
	added  map[dkey]bool
}

// note records the references of manifests being stored; the caller holds
// phase for reading until its index transaction committed.
func (g *refGuard) note(ms ...*Manifest) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.active {
		return
	}
	for _, m := range ms {
		g.added[keyOf(m.Digest)] = true
		for _, d := range m.Refs {
			g.added[keyOf(d.Digest)] = true
		}
	}
}

func (g *refGuard) begin() {
	g.phase.Lock()
	g.mu.Lock()
	g.active, g.added = true, map[dkey]bool{}
	g.mu.Unlock()
	g.phase.Unlock()
}

func (g *refGuard) end() {
	g.mu.Lock()
	g.active, g.added = false, nil
	g.mu.Unlock()
}

func (g *refGuard) referenced(k dkey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.added[k]
}

// evict runs one pass. Passes run one at a time. The pass chooses on the
// graph in memory, holding it; it then deletes records and files, and
// takes out of the graph what it deleted from the index.
func (s *Store) evict(req evictRequest) (GCReport, error) {
	<-s.graph.loaded // a pass's time is its own, not the start-up's
	s.eviction.mu.Lock()
	defer s.eviction.mu.Unlock()
	start := time.Now()
	s.access.flush()
	s.eviction.guard.begin()
	defer s.eviction.guard.end()
	p := &pass{s: s, dead: map[dkey]v1.Hash{}, rep: GCReport{DryRun: req.dryRun}}
	err := s.graph.use(func(g *graph) error {
		p.g = g
		p.choose(req)
		if req.sweep {
			if err := p.findOrphans(); err != nil {
				return err
			}
		}
		if !req.dryRun {
			p.plan()
		}
		p.g = nil // not held past here
		return nil
	})
	if err != nil {
		return p.rep, err
	}
	if !req.dryRun {
		if err := p.apply(); err != nil {
			return p.rep, err
		}
	}
	p.rep.Usage = s.Usage()
	s.report(p.rep, time.Since(start))
	return p.rep, nil
}

// pass is the state of one eviction pass.
type pass struct {
	s       *Store
	g       *graph // while the pass holds it
	evicted []*mnode
	// dead are digests no remaining image reaches, to delete.
	dead    map[dkey]v1.Hash
	orphans map[dkey]v1.Hash
	rep     GCReport
	// What plan decided, for apply: the index keys of the records to
	// delete, the files to delete (sorted), the blob records to delete
	// blind (recorded) and their size, and those to read as they go.
	records  [][]byte
	tags     []TagRef
	nodes    []dkey
	doomed   []v1.Hash
	recorded []v1.Hash
	freed    int64
	unread   []v1.Hash
}

// choose picks the images to evict: the targets, or unpinned images least
// recently used first until need bytes would be freed.
func (p *pass) choose(req evictRequest) {
	g := p.g
	var cands []*mnode
	if req.targets != nil {
		cands = req.targets(g)
	} else if req.need > 0 {
		cands = p.s.eviction.order(g)
	}
	p.rep.Pinned = g.pinnedBytes(g.alloc)
	p.rep.PinnedOverBound = p.s.exceedsBound(p.rep.Pinned)
	for _, r := range cands {
		if req.targets == nil && p.rep.Freed >= req.need {
			break
		}
		p.evictOne(r)
	}
}

func (p *pass) evictOne(root *mnode) {
	for _, k := range p.g.reach(root) {
		if p.g.addRef(k, -1) > 0 {
			continue
		}
		p.dead[k] = p.g.hashOf(k)
		if alloc, ok := p.g.alloc(k); ok {
			p.rep.Freed += alloc
			p.rep.Blobs++
		}
	}
	p.evicted = append(p.evicted, root)
	p.rep.Evicted++
	p.rep.Images = append(p.rep.Images, p.g.names(root)...)
}

// compareKeys orders keys as their digests' strings sort; a sha256 key's
// bytes sort as its hex does.
func (g *graph) compareKeys(a, b dkey) int {
	_, ao := g.other[a]
	_, bo := g.other[b]
	if ao || bo {
		return compareDigests(g.hashOf(a), g.hashOf(b))
	}
	return bytes.Compare(a[:], b[:])
}

// compareDigests orders digests as their strings sort, without building
// them.
func compareDigests(a, b v1.Hash) int {
	if c := strings.Compare(a.Algorithm, b.Algorithm); c != 0 {
		return c
	}
	return strings.Compare(a.Hex, b.Hex)
}

// pinnedBytes is what the blobs of pinned images occupy, each once, by
// the sizes alloc finds.
func (g *graph) pinnedBytes(alloc func(dkey) (int64, bool)) int64 {
	seen := map[dkey]bool{}
	var n int64
	for _, r := range g.roots {
		if !g.pinned(r) {
			continue
		}
		for _, k := range g.reach(r) {
			if seen[k] {
				continue
			}
			seen[k] = true
			if a, ok := alloc(k); ok {
				n += a
			}
		}
	}
	return n
}

// plan decides, on the graph, what apply deletes.
func (p *pass) plan() {
	p.planRecords()
	for _, set := range []map[dkey]v1.Hash{p.dead, p.orphans} {
		for k, h := range set {
			if p.s.eviction.guard.referenced(k) || p.s.fillInFlight(h) {
				continue
			}
			p.doomed = append(p.doomed, h)
		}
	}
	// In key order: the records are neighbours in the index, and the
	// files in their directories.
	slices.SortFunc(p.doomed, compareDigests)
	// The records the graph holds are deleted blind, their sizes taken
	// from it: a record cannot change while its file is in place (no fill
	// or import of the digest starts then, and repairs do not run during
	// a pass), and the file stays until the record is gone. A record made
	// since (a fill that committed) is read as it is deleted.
	for _, h := range p.doomed {
		if alloc, ok := p.g.alloc(keyOf(h)); ok {
			p.recorded = append(p.recorded, h)
			p.freed += alloc
		} else {
			p.unread = append(p.unread, h)
		}
	}
}

// apply removes the references of the evicted images, then their files.
func (p *pass) apply() error {
	if err := p.s.deleteKeys(p.records); err != nil {
		return err
	}
	p.s.graph.change(func(g *graph) {
		for _, t := range p.tags {
			g.deleteTag(t)
		}
		for _, k := range p.nodes {
			g.deleteNode(k)
		}
	})
	if err := p.unrecord(); err != nil {
		return err
	}
	// The link scan reads the index while the unlinks wait on the
	// filesystem: both at once. Either may be cut short by a crash; the
	// links left then point at nothing (verify lists them).
	links := make(chan error, 1)
	go func() {
		links <- p.s.removeLinks(func(k dkey) bool { _, d := p.dead[k]; _, o := p.orphans[k]; return d || o })
	}()
	p.s.removeBlobs(p.doomed)
	return <-links
}

// unrecord removes the f: records of the doomed digests, from the index
// and the graph, before their files go: no fill of them can start and
// commit in between (the file is there).
func (p *pass) unrecord() error {
	keys := make([][]byte, 0, len(p.recorded))
	for _, h := range p.recorded {
		keys = append(keys, fileKey(h))
	}
	if err := p.s.deleteKeys(keys); err != nil {
		return err
	}
	p.s.graph.change(func(g *graph) {
		for _, h := range p.recorded {
			g.deleteFile(h)
		}
	})
	p.s.use.blobs.Add(-p.freed)
	return p.s.unrecordBlobs(p.unread)
}

// unlinkWorkers is how many files a pass deletes at once: an unlink mostly
// waits for the filesystem, and a large pass deletes tens of thousands.
const unlinkWorkers = 4

// removeBlobs deletes the files of hs, each through removeBlob.
func (s *Store) removeBlobs(hs []v1.Hash) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(unlinkWorkers, len(hs)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(hs)); i = next.Add(1) - 1 {
				if err := s.removeBlob(hs[i]); err != nil && !errors.Is(err, ErrNotFound) {
					s.log.Warn("remove evicted blob", "digest", hs[i].String(), "err", err)
				}
			}
		})
	}
	wg.Wait()
}

// planRecords lists the manifest records, access times and tags of what
// the pass evicts, tags first: a crash in between leaves manifests
// without tags, which the next pass evicts again.
func (p *pass) planRecords() {
	for _, r := range p.evicted {
		p.planTags(r)
	}
	for k, h := range p.dead {
		n := p.g.nodes[k]
		if n == nil || p.s.eviction.guard.referenced(k) {
			continue
		}
		p.planTags(n)
		p.records = append(p.records, manifestKey(h), accessKey(h), pinKey(h))
		p.nodes = append(p.nodes, k)
		p.s.hotMan.Remove(h)
	}
	for _, h := range p.orphans {
		p.records = append(p.records, accessKey(h))
	}
}

func (p *pass) planTags(n *mnode) {
	for _, t := range n.tags {
		p.records = append(p.records, tagKey(t.Repo, t.Tag))
		p.tags = append(p.tags, t)
		p.s.hotTag.Remove(hotTagKey(t.Repo, t.Tag))
	}
}

// deleteKeys deletes keys, in order, with a write batch: blind deletes
// need no transaction's read tracking, and the batch commits its pieces
// while it is filled.
func (s *Store) deleteKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	if err := s.gate.allow(); err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// removeLinks deletes every repository link to a digest dead says is
// gone, and the referrers lists of such subjects, and forgets the links
// found in memory.
func (s *Store) removeLinks(dead func(dkey) bool) error {
	var keys [][]byte
	rel := s.pageReleaser()
	defer rel.done()
	err := s.db.View(func(txn *badger.Txn) error {
		for _, prefix := range []string{"l:", "rf:"} {
			keys = append(keys, deadKeys(txn, prefix, dead, rel)...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		s.hotLink.Purge()
	}
	return s.deleteKeys(keys)
}

// deadKeys are the keys under prefix ending in "@<digest>" of a dead
// digest.
func deadKeys(txn *badger.Txn, prefix string, dead func(dkey) bool, rel *pageReleaser) [][]byte {
	var keys [][]byte
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		rel.read()
		k := it.Item().Key()
		i := bytes.LastIndexByte(k, '@')
		if i < 0 {
			continue
		}
		if dk, _, _, ok := parseKey(k[i+1:]); ok && dead(dk) {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
	}
	return keys
}

func (s *Store) fillInFlight(h v1.Hash) bool {
	s.fills.mu.Lock()
	defer s.fills.mu.Unlock()
	return s.fills.m[h] != nil
}

// findOrphans finds committed files that no image reaches, committed and
// last read longer ago than the grace period, among the blob records the
// graph was read with.
func (p *pass) findOrphans() error {
	p.orphans = map[dkey]v1.Hash{}
	cutoffAt := p.s.now().Add(-p.s.opts.OrphanGrace)
	cutoff, cutoffMillis := uint32(max(cutoffAt.Unix(), 0)), cutoffAt.UnixMilli()
	return p.s.db.View(func(txn *badger.Txn) error {
		for _, f := range p.g.files {
			if _, dead := p.dead[f.k]; dead || f.refc > 0 || f.alloc < 0 || f.committed > cutoff {
				continue
			}
			h := p.g.hashOf(f.k)
			if lastAccess(txn, h) > cutoffMillis {
				continue
			}
			p.orphans[f.k] = h
			p.rep.Orphans++
			p.rep.Freed += f.alloc
		}
		return nil
	})
}

func lastAccess(txn *badger.Txn, h v1.Hash) int64 {
	item, err := txn.Get(accessKey(h))
	if err != nil {
		return 0
	}
	var at int64
	_ = item.Value(func(b []byte) error { at = accessMillis(b); return nil })
	return at
}

// report logs one line per pass that did something and counts it.
func (s *Store) report(rep GCReport, took time.Duration) {
	s.notePinned(rep.Pinned, rep.PinnedOverBound)
	if rep.DryRun {
		return
	}
	s.eviction.totals.add(rep)
	s.metrics.passes.Inc()
	s.metrics.evictions.Add(float64(rep.Evicted))
	s.metrics.freed.Add(float64(rep.Freed))
	if rep.Evicted == 0 && rep.Orphans == 0 {
		return
	}
	s.log.Info("eviction pass", "images", rep.Evicted, "blobs", rep.Blobs, "orphans", rep.Orphans,
		"freed", rep.Freed, "used", rep.Usage.Used, "bound", s.opts.MaxSize, "free", rep.Usage.Free,
		"pinned", rep.Pinned, "took", took.Round(time.Millisecond))
}

// notePinned sets the pinned metric and says loudly when pins alone
// exceed the bound.
func (s *Store) notePinned(pinned int64, overBound bool) {
	s.metrics.pinned.Set(float64(pinned))
	if overBound && s.warnPinned() {
		s.log.Error("pinned images alone exceed the size bound; they are never evicted: unpin some or raise max_size",
			"pinned", pinned, "bound", s.opts.MaxSize)
	}
}

// warnPinned rations the pinned-over-bound error to one line every ten
// minutes: loud, not a flood.
func (s *Store) warnPinned() bool {
	now := time.Now()
	if last := s.eviction.pinnedWarned.Load(); last != 0 && now.Sub(time.Unix(0, last)) < 10*time.Minute {
		return false
	}
	s.eviction.pinnedWarned.Store(now.UnixNano())
	return true
}
