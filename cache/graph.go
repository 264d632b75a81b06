package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// dkey is a digest in 32 bytes: the graph of a large cache holds millions
// of them, and a v1.Hash is two strings.
type dkey [32]byte

func keyOf(h v1.Hash) dkey {
	var k dkey
	if h.Algorithm == "sha256" && len(h.Hex) == 64 {
		if _, err := hex.Decode(k[:], []byte(h.Hex)); err == nil {
			return k
		}
	}
	return sha256.Sum256([]byte(h.String()))
}

// TagRef is one tag of a repository.
type TagRef struct {
	Repo Repo
	Tag  string
}

func (t TagRef) String() string { return t.Repo.String() + ":" + t.Tag }

// gref is one reference of a manifest in the graph.
type gref struct {
	k        dkey
	h        v1.Hash
	size     int64
	platform *v1.Platform
}

// mnode is one manifest record.
type mnode struct {
	h         v1.Hash
	k         dkey
	mediaType string
	size      int64
	refs      []gref
	// child: an index references it, so it belongs to that index's image.
	child  bool
	tags   []TagRef
	last   int64 // last access, unix seconds (0: never recorded)
	pinned bool  // p:<digest>
}

func (n *mnode) isIndex() bool { return types.MediaType(n.mediaType).IsIndex() }

// graph is every manifest of the store, the images they form (a root
// manifest with what it references: an index with its child manifests and
// theirs), and how many images reach each digest.
type graph struct {
	nodes map[dkey]*mnode
	roots []*mnode
	refc  map[dkey]int32
	// patterns are the pin patterns (configured and stored).
	patterns []string
}

// loadGraph reads the graph in one read transaction.
func (s *Store) loadGraph() (*graph, error) {
	g := &graph{nodes: map[dkey]*mnode{}, refc: map[dkey]int32{}, patterns: s.pinPatterns()}
	err := s.db.View(func(txn *badger.Txn) error {
		if err := g.readManifests(txn); err != nil {
			return err
		}
		if err := g.readTags(txn); err != nil {
			return err
		}
		g.readMeta(txn)
		return nil
	})
	if err != nil {
		return nil, err
	}
	g.link()
	return g, nil
}

func (g *graph) readManifests(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("m:"), PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		h, err := v1.NewHash(string(it.Item().Key()[2:]))
		if err != nil {
			continue
		}
		var rec manifestRecord
		if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &rec) }); err != nil {
			continue
		}
		n := &mnode{h: h, k: keyOf(h), mediaType: rec.MediaType, size: rec.Size, refs: make([]gref, 0, len(rec.Refs))}
		for _, d := range rec.Refs {
			r := gref{k: keyOf(d.Digest), h: d.Digest, size: d.Size}
			if n.isIndex() {
				r.platform = d.Platform
			}
			n.refs = append(n.refs, r)
		}
		g.nodes[n.k] = n
	}
	return nil
}

func (g *graph) readTags(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("t:"), PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		repo, tag, ok := parseTagKey(string(it.Item().Key()))
		if !ok {
			continue
		}
		var t Tag
		if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &t) }); err != nil {
			continue
		}
		if n := g.nodes[keyOf(t.Digest)]; n != nil {
			n.tags = append(n.tags, TagRef{Repo: repo, Tag: tag})
		}
	}
	return nil
}

// readMeta reads pins and access times of the manifests.
func (g *graph) readMeta(txn *badger.Txn) {
	for _, n := range g.nodes {
		if _, err := txn.Get(pinKey(n.h)); err == nil {
			n.pinned = true
		}
		if item, err := txn.Get(accessKey(n.h)); err == nil {
			_ = item.Value(func(b []byte) error {
				if len(b) == 8 {
					n.last = int64(binary.BigEndian.Uint64(b))
				}
				return nil
			})
		}
	}
}

// link marks children, finds the roots and counts references.
func (g *graph) link() {
	for _, n := range g.nodes {
		if !n.isIndex() {
			continue
		}
		for _, r := range n.refs {
			if c := g.nodes[r.k]; c != nil && c != n {
				c.child = true
			}
		}
	}
	for _, n := range g.nodes {
		if !n.child {
			g.roots = append(g.roots, n)
		}
	}
	for _, r := range g.roots {
		for _, k := range g.reach(r) {
			g.refc[k]++
		}
	}
}

// reach is every digest of root's image, once each: the root, its
// references, and for an index its children's references.
func (g *graph) reach(root *mnode) []dkey {
	seen := map[dkey]bool{}
	var out []dkey
	var walk func(n *mnode, depth int)
	walk = func(n *mnode, depth int) {
		if seen[n.k] {
			return
		}
		seen[n.k] = true
		out = append(out, n.k)
		for _, r := range n.refs {
			if c := g.nodes[r.k]; c != nil && n.isIndex() && depth < 4 {
				walk(c, depth+1)
				continue
			}
			if !seen[r.k] {
				seen[r.k] = true
				out = append(out, r.k)
			}
		}
	}
	walk(root, 0)
	return out
}

// hashes maps the digests of root's image back to v1.Hash.
func (g *graph) hashes(root *mnode) map[dkey]v1.Hash {
	out := map[dkey]v1.Hash{}
	var walk func(n *mnode, depth int)
	walk = func(n *mnode, depth int) {
		out[n.k] = n.h
		for _, r := range n.refs {
			out[r.k] = r.h
			if c := g.nodes[r.k]; c != nil && n.isIndex() && depth < 4 {
				walk(c, depth+1)
			}
		}
	}
	walk(root, 0)
	return out
}

// lastUsed is when root's image was last pulled: an index pulled counts as
// its children pulled, and a child pulled counts for the index.
func (g *graph) lastUsed(root *mnode) int64 {
	last := root.last
	if root.isIndex() {
		for _, r := range root.refs {
			if c := g.nodes[r.k]; c != nil {
				last = max(last, c.last)
			}
		}
	}
	return last
}

// pinned reports whether root's image must be kept, and why.
func (g *graph) pinned(root *mnode) bool {
	if root.pinned {
		return true
	}
	for _, t := range root.tags {
		if matchPin(g.patterns, t.String()) {
			return true
		}
	}
	return matchPinDigest(g.patterns, root)
}

func matchPinDigest(patterns []string, root *mnode) bool {
	for _, p := range patterns {
		if i := strings.LastIndex(p, "@"); i >= 0 && p[i+1:] == root.h.String() {
			return true
		}
	}
	return false
}

// names are the tags of root, or its digest when it has none.
func (g *graph) names(root *mnode) []string {
	if len(root.tags) == 0 {
		return []string{root.h.String()}
	}
	out := make([]string, 0, len(root.tags))
	for _, t := range root.tags {
		out = append(out, t.String())
	}
	return out
}
