package cache

import (
	"bytes"
	"slices"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// liveGraph is the image graph kept in memory: read from the index once,
// in the background at start-up, then changed by every write that changes
// it (manifests, tags, pins, access times, blob records, referrers), so a
// listing or an eviction pass reads no index records. Writes made while
// it loads are kept and applied once it is read; each change sets a value
// (no increments), so one that the load already saw is applied twice
// harmlessly.
type liveGraph struct {
	mu      sync.Mutex
	g       *graph
	pending []func(*graph)
	loaded  chan struct{}
	// patterns reads the pin patterns (configured and stored: a few).
	patterns func() []string
}

// change applies fn to the graph, or keeps it for when the graph is read.
func (l *liveGraph) change(fn func(*graph)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.g == nil {
		l.pending = append(l.pending, fn)
		return
	}
	fn(l.g)
}

// set installs the graph read at start-up, with the changes made since.
func (l *liveGraph) set(g *graph) {
	l.mu.Lock()
	for _, fn := range l.pending {
		fn(g)
	}
	l.g, l.pending = g, nil
	l.mu.Unlock()
	close(l.loaded)
}

// use runs fn on the linked graph, holding it: no write changes it
// meanwhile. It waits for the start-up load.
func (l *liveGraph) use(fn func(*graph) error) error {
	<-l.loaded
	l.mu.Lock()
	defer l.mu.Unlock()
	l.g.patterns = l.patterns()
	l.g.link()
	return fn(l.g)
}

// Loading reports whether the image graph is still being read at
// start-up: blobs and manifests are served meanwhile; listings, eviction
// passes and pinned sizes wait for it.
func (s *Store) Loading() bool {
	select {
	case <-s.graph.loaded:
		return false
	default:
		return true
	}
}

// loadLive reads the graph at start-up. A failed read is tried again a
// few times; after that the store gives up keeping it in memory and logs
// it (listings and passes then wait; a restart reads it again).
func (s *Store) loadLive() {
	defer s.wg.Done()
	for try := 0; ; try++ {
		g, err := s.loadGraph(true)
		if err == nil {
			read := g.size() // before set: from then on the graph is held to be read
			s.graph.set(g)
			returnMemory(read)
			return
		}
		s.log.Error("read the image graph", "err", err, "try", try)
		if try == 2 {
			return
		}
		select {
		case <-s.stop:
			return
		default:
		}
	}
}

// The changes below are made with the graph held (liveGraph.change).

// putNode adds or replaces the node of m, keeping what else is known of it.
func (g *graph) putNode(m *Manifest) {
	n := &mnode{k: keyOf(m.Digest), mediaType: g.intern(m.MediaType)}
	if old := g.nodes[n.k]; old != nil {
		n.last, n.pinned = old.last, old.pinned
	}
	g.keep(n.k, m.Digest)
	n.refs = make([]gref, 0, len(m.Refs))
	for _, d := range m.Refs {
		r := gref{k: keyOf(d.Digest)}
		g.keep(r.k, d.Digest)
		n.refs = append(n.refs, r)
		if n.isIndex() {
			n.platforms = append(n.platforms, d.Platform)
		}
	}
	g.nodes[n.k] = n
}

func (g *graph) intern(s string) string {
	if t, ok := g.types[s]; ok {
		return t
	}
	g.types[s] = s
	return s
}

// setTag points t at k.
func (g *graph) setTag(t TagRef, k dkey) {
	t.Repo.Registry, t.Repo.Name = g.name(t.Repo.Registry), g.name(t.Repo.Name)
	g.tags[t] = k
}

func (g *graph) name(s string) string {
	if n, ok := g.strs[s]; ok {
		return n
	}
	g.strs[s] = s
	return s
}

func (g *graph) deleteTag(t TagRef) { delete(g.tags, t) }

// deleteNode forgets a manifest (its record was deleted), with the
// referrers recorded of it (an eviction deletes their lists with it).
func (g *graph) deleteNode(k dkey) {
	delete(g.nodes, k)
	delete(g.referrers, k)
}

// setPin sets or clears the pin of a manifest (p:<digest>).
func (g *graph) setPin(h v1.Hash, pinned bool) {
	if n := g.nodes[keyOf(h)]; n != nil {
		n.pinned = pinned
	}
}

// setLast records a manifest's last access, unix milliseconds.
func (g *graph) setLast(h v1.Hash, at int64) {
	if n := g.nodes[keyOf(h)]; n != nil {
		n.last = at
	}
}

// addReferrers adds referrers to subject's, once each; a referrer or a
// subject not (yet) cached is kept, and counted once both are.
func (g *graph) addReferrers(subject dkey, refs []v1.Descriptor) {
	for _, d := range refs {
		rk := keyOf(d.Digest)
		if !slices.Contains(g.referrers[subject], rk) {
			g.referrers[subject] = append(g.referrers[subject], rk)
		}
	}
}

// putFile records the blob file of h.
func (g *graph) putFile(h v1.Hash, rec fileRecord) {
	k := keyOf(h)
	g.keep(k, h)
	e := fileEntry{k: k, alloc: rec.alloc, committed: uint32(rec.committed)}
	if i, ok := g.fileIndex(k); ok {
		if g.files[i].alloc < 0 {
			g.tombs--
		}
		g.files[i] = e
		return
	}
	g.recent[k] = e
}

// deleteFile forgets the blob file of h.
func (g *graph) deleteFile(h v1.Hash) {
	k := keyOf(h)
	delete(g.recent, k)
	if i, ok := g.fileIndex(k); ok && g.files[i].alloc >= 0 {
		g.files[i].alloc = -1
		g.tombs++
	}
}

// compact merges the records made since into the sorted files and drops
// the removed ones, in place from the end: no second copy of a million
// entries.
func (g *graph) compact() {
	if len(g.recent) == 0 && g.tombs == 0 {
		return
	}
	add := make([]fileEntry, 0, len(g.recent))
	for _, e := range g.recent {
		add = append(add, e)
	}
	slices.SortFunc(add, compareFiles)
	old := len(g.files)
	g.files = slices.Grow(g.files, len(add))[:old+len(add)]
	w, i, j := len(g.files), old-1, len(add)-1
	for i >= 0 || j >= 0 {
		var e fileEntry
		if j < 0 || (i >= 0 && bytes.Compare(g.files[i].k[:], add[j].k[:]) > 0) {
			e, i = g.files[i], i-1
		} else {
			e, j = add[j], j-1
		}
		if e.alloc >= 0 {
			w--
			g.files[w] = e
		}
	}
	g.files = slices.Delete(g.files, 0, w)
	clear(g.recent)
	g.tombs = 0
	g.indexFiles()
}
