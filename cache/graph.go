package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
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

// parseKey reads "sha256:<hex>" (or another algorithm) into a key without
// allocating for the common case; other is true when the digest is not a
// sha256 one and its v1.Hash must be kept to be found again.
func parseKey(d []byte) (k dkey, h v1.Hash, other bool, ok bool) {
	if len(d) == 71 && string(d[:7]) == "sha256:" {
		if _, err := hex.Decode(k[:], d[7:]); err == nil {
			return k, v1.Hash{}, false, true
		}
	}
	h, err := v1.NewHash(string(d))
	if err != nil {
		return k, h, false, false
	}
	return keyOf(h), h, h.Algorithm != "sha256" || len(h.Hex) != 64, true
}

// TagRef is one tag of a repository.
type TagRef struct {
	Repo Repo
	Tag  string
}

func (t TagRef) String() string { return t.Repo.String() + ":" + t.Tag }

// gref is one reference of a manifest in the graph.
type gref struct {
	k dkey
}

// mnode is one manifest record: about 480 bytes for an image of ten
// digests. Its digest is its key (graph.hashOf).
type mnode struct {
	k         dkey
	mediaType string
	refs      []gref
	// platforms are an index's references' platforms, by position.
	platforms []*v1.Platform
	// child: an index references it, or it is a referrer of a cached
	// subject, so it belongs to that image.
	child bool
	// referrers are the cached manifests whose subject this is
	// (signatures, SBOMs): evicted with it.
	referrers []dkey
	tags      []TagRef
	last      int64 // last access, unix milliseconds (0: never recorded)
	pinned    bool  // p:<digest>
}

func (n *mnode) isIndex() bool { return types.MediaType(n.mediaType).IsIndex() }

// graph is every manifest of the store, the images they form (a root
// manifest with what it references: an index with its child manifests and
// theirs), the blob records, and how many images reach each digest. The
// store keeps one in memory (liveGraph), loaded at start-up and updated by
// every write; link derives roots and reference counts from it.
type graph struct {
	nodes map[dkey]*mnode
	// tags are every tag and the digest it names; link hangs them on the
	// nodes.
	tags map[TagRef]dkey
	// referrers are the referrers recorded of each subject (any
	// repository's list); link hangs those cached on their subjects.
	referrers map[dkey][]dkey
	// strs holds each registry and repository name once.
	strs  map[string]string
	roots []*mnode
	// loose counts the images reaching a digest that has no blob record;
	// a recorded digest's count is in its fileEntry.
	loose map[dkey]int32
	// other holds the digests that are not sha256, whose keys cannot be
	// turned back into a digest.
	other map[dkey]v1.Hash
	// patterns are the pin patterns (configured and stored).
	patterns []string
	// types holds each media type once: a hundred thousand nodes share
	// a handful.
	types map[string]string
	// files are the blob records (f:), sorted by key; a removed one is
	// kept as a tombstone (alloc < 0) until the next compaction, and those
	// recorded since are in recent. fileStart[p] is where the keys
	// starting with the two bytes p begin.
	files     []fileEntry
	fileStart []int32
	recent    map[dkey]fileEntry
	tombs     int
	// release, while the graph is read, gives back the index pages read
	// so far (releaseIndexPages); called every releaseEvery records.
	release func()
}

const releaseEvery = 20_000

// fileEntry is one blob record: 48 bytes for each of a million blobs.
type fileEntry struct {
	k         dkey
	alloc     int64
	committed uint32 // unix seconds
	refc      int32  // images reaching it, as of the last link
}

func newGraph(patterns []string) *graph {
	return &graph{nodes: map[dkey]*mnode{}, tags: map[TagRef]dkey{}, strs: map[string]string{}, referrers: map[dkey][]dkey{},
		loose: map[dkey]int32{}, other: map[dkey]v1.Hash{}, patterns: patterns, types: map[string]string{},
		recent: map[dkey]fileEntry{}, fileStart: make([]int32, 1<<16+1)}
}

// size is how much the graph holds: its manifests and blob records.
func (g *graph) size() int { return len(g.nodes) + len(g.files) }

// bigRead is the size of a read of the index (digests and records) past
// which its memory is given back at once.
const bigRead = 100_000

// returnMemory gives the heap a large read of the index left behind back
// to the system. Reading 89,095 images (892,732 blobs) made a graph of
// 220 MiB live; once it was garbage, the process's anonymous memory stayed
// at 282 MiB (21 MiB live) until the runtime's background scavenger
// returned it, over minutes. Returned at once it was 28 MiB. It costs one
// garbage collection of what is live, after a read that took seconds.
func returnMemory(read int) {
	if read >= bigRead {
		debug.FreeOSMemory()
	}
}

// hashOf turns a key back into its digest.
func (g *graph) hashOf(k dkey) v1.Hash {
	if h, ok := g.other[k]; ok {
		return h
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(k[:])}
}

// alloc is the recorded allocated size of k's file, if it has one.
func (g *graph) alloc(k dkey) (int64, bool) {
	if e := g.file(k); e != nil {
		return e.alloc, true
	}
	return 0, false
}

// file is k's blob record, or nil.
func (g *graph) file(k dkey) *fileEntry {
	if i, ok := g.fileIndex(k); ok && g.files[i].alloc >= 0 {
		return &g.files[i]
	}
	if e, ok := g.recent[k]; ok {
		g.compact() // rare: link compacts first; the entry needs an address
		return g.file(e.k)
	}
	return nil
}

// fileIndex finds k among the sorted files.
func (g *graph) fileIndex(k dkey) (int, bool) {
	// The search starts from the entries of k's first two bytes: a
	// listing looks up a million keys, and a search over all the files
	// misses the CPU caches at most of its twenty steps.
	p := int(k[0])<<8 | int(k[1])
	lo, hi := int(g.fileStart[p]), int(g.fileStart[p+1])
	i, ok := slices.BinarySearchFunc(g.files[lo:hi], k, func(e fileEntry, k dkey) int { return bytes.Compare(e.k[:], k[:]) })
	return lo + i, ok
}

// refs is how many images reach k, as of the last link; ok is false when
// none does.
func (g *graph) refs(k dkey) (int32, bool) {
	if e := g.file(k); e != nil {
		return e.refc, e.refc > 0
	}
	n, ok := g.loose[k]
	return n, ok
}

// addRef counts one more image reaching k (delta -1: one less) and
// returns the count.
func (g *graph) addRef(k dkey, delta int32) int32 {
	if e := g.file(k); e != nil {
		e.refc += delta
		return e.refc
	}
	g.loose[k] += delta
	return g.loose[k]
}

// indexFiles fills fileStart for the sorted files.
func (g *graph) indexFiles() {
	// Every entry is written below: the table is reused, not made anew
	// at each link.
	if len(g.fileStart) != 1<<16+1 {
		g.fileStart = make([]int32, 1<<16+1)
	}
	i := 0
	for p := range 1 << 16 {
		g.fileStart[p] = int32(i)
		for i < len(g.files) && int(g.files[i].k[0])<<8|int(g.files[i].k[1]) == p {
			i++
		}
	}
	g.fileStart[1<<16] = int32(i)
}

// readFiles reads every f: record, with the digests that are not sha256
// (see graph.other). Keys only: the records are 16 bytes, kept in the LSM
// tree and read in place.
func readFiles(txn *badger.Txn, release func()) ([]fileEntry, map[dkey]v1.Hash) {
	var files []fileEntry
	other := map[dkey]v1.Hash{}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("f:")})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k, h, isOther, ok := parseKey(it.Item().Key()[2:])
		if !ok {
			continue
		}
		if isOther {
			other[k] = h
		}
		var rec fileRecord
		_ = it.Item().Value(func(b []byte) error { rec = parseFileRecord(b); return nil })
		files = append(files, fileEntry{k: k, alloc: rec.alloc, committed: uint32(rec.committed)})
		if len(files)%(10*releaseEvery) == 0 {
			release()
		}
	}
	// Sorted already for sha256 digests (the keys' hex order is their
	// bytes' order); others go where their key sorts.
	if !slices.IsSortedFunc(files, compareFiles) {
		slices.SortFunc(files, compareFiles)
	}
	return files, other
}

func compareFiles(a, b fileEntry) int { return bytes.Compare(a.k[:], b.k[:]) }

// loadGraph reads the graph from the index in one read transaction;
// withFiles reads the blob records too (what sizes and orphans need).
//
// The blob records are read at the same time, in a transaction of their
// own: a record committed between the two snapshots is either not seen
// (no size, not an orphan) or seen without the manifest that references
// it, and then too recent to be swept as an orphan.
func (s *Store) loadGraph(withFiles bool) (*graph, error) {
	s.graphReads.Add(1)
	g := newGraph(s.pinPatterns())
	g.release = func() { releaseIndexPages(filepath.Join(s.dir, "index")) }
	defer g.release()
	var other map[dkey]v1.Hash
	var ferr error
	read := make(chan struct{})
	if withFiles {
		go func() {
			defer close(read)
			ferr = s.db.View(func(txn *badger.Txn) error {
				g.files, other = readFiles(txn, g.release)
				return nil
			})
		}()
	} else {
		close(read)
	}
	err := s.db.View(func(txn *badger.Txn) error {
		if err := g.readManifests(txn); err != nil {
			return err
		}
		if err := g.readTags(txn); err != nil {
			return err
		}
		g.readReferrers(txn)
		g.readMeta(txn)
		return nil
	})
	<-read
	if err := errors.Join(err, ferr); err != nil {
		return nil, err
	}
	maps.Copy(g.other, other)
	g.indexFiles()
	g.link()
	return g, nil
}

// leanRecord is the part of a manifest record the graph needs; digests
// stay bytes until they are keys. The digests scan reads are slices of the
// record's buffer, valid while the buffer is.
type leanRecord struct {
	MediaType string    `json:"t"`
	Size      int64     `json:"s"`
	Refs      []leanRef `json:"r"`
	// types, when set, holds each media type scanned once.
	types map[string]string
}

// intern is b as a string, held once in types.
func (r *leanRecord) intern(b []byte) string {
	if r.types == nil {
		return string(b)
	}
	if t, ok := r.types[string(b)]; ok {
		return t
	}
	t := string(b)
	r.types[t] = t
	return t
}

type leanRef struct {
	Digest   json.RawMessage `json:"d"`
	Size     int64           `json:"s"`
	Platform *v1.Platform    `json:"p"`
}

// parse decodes a record. The records of image manifests, which are most
// of them, are read by a scanner of the exact form json.Marshal writes for
// manifestRecord (a hundred thousand of them are read per eviction pass);
// anything else, indexes with platforms included, goes through
// encoding/json.
func (r *leanRecord) parse(b []byte) error {
	if !bytes.Contains(b, []byte(`"p":`)) && r.scan(b) {
		return nil
	}
	*r = leanRecord{}
	return json.Unmarshal(b, r)
}

func (r *leanRecord) scan(b []byte) bool {
	var ok bool
	if b, ok = bytes.CutPrefix(b, []byte(`{"t":"`)); !ok {
		return false
	}
	i := bytes.IndexByte(b, '"')
	if i < 0 || bytes.IndexByte(b[:i], '\\') >= 0 {
		return false
	}
	r.MediaType, b = r.intern(b[:i]), b[i+1:]
	if b, ok = bytes.CutPrefix(b, []byte(`,"s":`)); !ok {
		return false
	}
	if r.Size, b, ok = scanInt(b); !ok {
		return false
	}
	if bytes.Equal(b, []byte(`,"r":null}`)) {
		return true
	}
	if b, ok = bytes.CutPrefix(b, []byte(`,"r":[`)); !ok {
		return false
	}
	for len(b) > 0 && b[0] != ']' {
		b = bytes.TrimPrefix(b, []byte(","))
		if b, ok = bytes.CutPrefix(b, []byte(`{"d":"`)); !ok {
			return false
		}
		i := bytes.IndexByte(b, '"')
		if i < 0 {
			return false
		}
		d := b[:i]
		if b, ok = bytes.CutPrefix(b[i+1:], []byte(`,"s":`)); !ok {
			return false
		}
		var size int64
		if size, b, ok = scanInt(b); !ok {
			return false
		}
		if j := bytes.IndexByte(b, '}'); j < 0 {
			return false
		} else {
			b = b[j+1:] // the media type, if any
		}
		r.Refs = append(r.Refs, leanRef{Digest: d, Size: size})
	}
	return bytes.Equal(b, []byte("]}"))
}

func scanInt(b []byte) (int64, []byte, bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return n, b[i:], err == nil
}

func (g *graph) readManifests(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("m:"), PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	var rec leanRecord
	for it.Rewind(); it.Valid(); it.Next() {
		k, h, other, ok := parseKey(it.Item().Key()[2:])
		if !ok {
			continue
		}
		if other {
			g.other[k] = h
		}
		// The node is made inside the callback: what the scanner read
		// points into the value's buffer. The references' slice is
		// reused from record to record.
		_ = it.Item().Value(func(b []byte) error {
			rec = leanRecord{Refs: rec.Refs[:0], types: g.types}
			if err := rec.parse(b); err != nil {
				return err
			}
			g.addNode(k, &rec)
			if len(g.nodes)%releaseEvery == 0 {
				g.release()
			}
			return nil
		})
	}
	return nil
}

// addNode adds the node of manifest k.
func (g *graph) addNode(k dkey, rec *leanRecord) {
	n := &mnode{k: k, mediaType: rec.MediaType, refs: make([]gref, 0, len(rec.Refs))}
	for _, d := range rec.Refs {
		k, rh, other, ok := parseKey(bytes.Trim(d.Digest, `"`))
		if !ok {
			continue
		}
		if other {
			g.other[k] = rh
		}
		n.refs = append(n.refs, gref{k: k})
		if n.isIndex() {
			n.platforms = append(n.platforms, d.Platform)
		}
	}
	g.nodes[n.k] = n
}

func (g *graph) keep(k dkey, h v1.Hash) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		g.other[k] = h
	}
}

func (g *graph) readTags(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("t:"), PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		repo, tag, ok := parseTagKey(string(it.Item().Key()))
		if !ok {
			continue
		}
		var k dkey
		if err := it.Item().Value(func(b []byte) error { k, ok = tagTarget(b); return nil }); err != nil || !ok {
			continue
		}
		g.setTag(TagRef{Repo: repo, Tag: tag}, k)
	}
	return nil
}

// tagTarget is the key of the digest a tag record points to. Records of
// the form json.Marshal writes for Tag, the digest first, are read
// without decoding the rest (a hundred thousand per pass).
func tagTarget(b []byte) (dkey, bool) {
	if rest, ok := bytes.CutPrefix(b, []byte(`{"d":"`)); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 {
			if k, _, _, ok := parseKey(rest[:i]); ok {
				return k, true
			}
		}
	}
	var t Tag
	if err := json.Unmarshal(b, &t); err != nil {
		return dkey{}, false
	}
	return keyOf(t.Digest), true
}

// readReferrers attaches each cached referrer to its cached subject, in
// every repository's referrers list.
func (g *graph) readReferrers(txn *badger.Txn) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("rf:"), PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		key := it.Item().Key()
		i := bytes.LastIndexByte(key, '@')
		if i < 0 {
			continue
		}
		k, _, _, ok := parseKey(key[i+1:])
		if !ok {
			continue
		}
		var rec referrersRecord
		if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &rec) }); err != nil {
			continue
		}
		g.addReferrers(k, rec.Manifests)
	}
}

// readMeta reads pins and access times of the manifests, each in one
// pass over its keys (sequential reads beat a lookup per manifest).
func (g *graph) readMeta(txn *badger.Txn) {
	g.scanKeys(txn, "p:", false, func(n *mnode, _ []byte) { n.pinned = true })
	g.scanKeys(txn, "a:", true, func(n *mnode, v []byte) { n.last = accessMillis(v) })
}

func (g *graph) scanKeys(txn *badger.Txn, prefix string, values bool, fn func(n *mnode, v []byte)) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: values, PrefetchSize: 1000})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k, _, _, ok := parseKey(it.Item().Key()[len(prefix):])
		if !ok {
			continue
		}
		if n := g.nodes[k]; n != nil {
			_ = it.Item().Value(func(v []byte) error { fn(n, v); return nil })
		}
	}
}

// link hangs the tags on their manifests, marks children, finds the
// roots and counts references.
func (g *graph) link() {
	g.compact()
	for _, n := range g.nodes {
		n.child, n.tags, n.referrers = false, n.tags[:0], n.referrers[:0]
		for _, rk := range g.referrers[n.k] {
			if g.nodes[rk] != nil && rk != n.k {
				n.referrers = append(n.referrers, rk)
			}
		}
	}
	for t, k := range g.tags {
		if n := g.nodes[k]; n != nil {
			n.tags = append(n.tags, t)
		}
	}
	for _, n := range g.nodes {
		for _, rk := range n.referrers {
			if c := g.nodes[rk]; c != nil && c != n {
				c.child = true
			}
		}
		if !n.isIndex() {
			continue
		}
		for _, r := range n.refs {
			if c := g.nodes[r.k]; c != nil && c != n {
				c.child = true
			}
		}
	}
	g.roots = g.roots[:0]
	for _, n := range g.nodes {
		if !n.child {
			g.roots = append(g.roots, n)
		}
	}
	for i := range g.files {
		g.files[i].refc = 0
	}
	clear(g.loose)
	for _, r := range g.roots {
		for _, k := range g.reach(r) {
			g.addRef(k, 1)
		}
	}
}

// reach is every digest of root's image, once each: the root, its
// references, and for an index its children's references.
func (g *graph) reach(root *mnode) []dkey {
	out := make([]dkey, 0, len(root.refs)+1)
	// Images reach a few dozen digests: a linear check beats a map.
	add := func(k dkey) bool {
		if slices.Contains(out, k) {
			return false
		}
		out = append(out, k)
		return true
	}
	var walk func(n *mnode, depth int)
	walk = func(n *mnode, depth int) {
		if !add(n.k) {
			return
		}
		for _, rk := range n.referrers {
			if c := g.nodes[rk]; c != nil && depth < 4 {
				walk(c, depth+1)
			}
		}
		index := n.isIndex() && depth < 4
		for _, r := range n.refs {
			// Only an index's references are manifests to walk: an image
			// manifest's are blobs, not looked up.
			if index {
				if c := g.nodes[r.k]; c != nil {
					walk(c, depth+1)
					continue
				}
			}
			add(r.k)
		}
	}
	walk(root, 0)
	return out
}

// lastUsed is when root's image was last pulled: an index pulled counts as
// its children pulled, and a child or a referrer (a signature checked on
// pull) pulled counts for the image.
func (g *graph) lastUsed(root *mnode) int64 {
	last := root.last
	for _, rk := range root.referrers {
		if c := g.nodes[rk]; c != nil {
			last = max(last, c.last)
		}
	}
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
	return matchPinDigest(g.patterns, g.hashOf(root.k))
}

func matchPinDigest(patterns []string, h v1.Hash) bool {
	for _, p := range patterns {
		if i := strings.LastIndex(p, "@"); i >= 0 && p[i+1:] == h.String() {
			return true
		}
	}
	return false
}

// names are the tags of root, or its digest when it has none.
func (g *graph) names(root *mnode) []string {
	if len(root.tags) == 0 {
		return []string{g.hashOf(root.k).String()}
	}
	out := make([]string, 0, len(root.tags))
	for _, t := range root.tags {
		out = append(out, t.String())
	}
	return out
}
