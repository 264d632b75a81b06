// Package cache is pullcache's content-addressed store: blobs (layers,
// configs and manifests) as files named by digest, written once after their
// bytes were verified; a badger index of manifests, tags, repository links
// and access times; an in-memory LRU of hot manifests and tags; and fills,
// the upstream downloads that any number of readers follow while they grow.
//
// It knows nothing of HTTP or of upstream registries: a fill is handed a
// function that opens the bytes.
//
// Where things are: a request for a blob enters through Store.Blob
// (blobentry.go); the order in which images are evicted is
// eviction.order (eviction.go), and passes are evict.go; a blob's file is
// written to a temp file and put in place by the local blob tier,
// cache/blobs/local (Tier.Place); the image graph kept in memory is
// livegraph.go over graph.go.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullcache/pullcache/cache/blobs"
	"github.com/pullcache/pullcache/cache/blobs/local"
)

// ErrNotFound says the store does not hold what was asked for.
var ErrNotFound = errors.New("not in cache")

// Options configure a Store.
type Options struct {
	// Dir is the data directory; required.
	Dir string
	// Logger receives the store's logs. Default: discard.
	Logger *slog.Logger
	// FillTimeout bounds one fill from open to commit. Default 30m.
	FillTimeout time.Duration
	// StallTimeout fails a fill whose source sends nothing for this long. Default 60s.
	StallTimeout time.Duration
	// HotEntries is the size of each in-memory LRU (manifests, tags). Default 4096.
	HotEntries int
	// FillRetryBackoff is how long a blob whose fill failed is not fetched
	// again from the same origin; it doubles with each consecutive failure,
	// up to 5 minutes. Default 1s.
	FillRetryBackoff time.Duration
	// OpenBlobs is how many hot blobs keep descriptors open between
	// requests (a few each). Default 256.
	OpenBlobs int
	// MaxSize bounds the disk space of the cache in bytes, index and fills
	// in progress included; least recently used images are evicted to stay
	// under it. Default 0: no bound but MinFree.
	MaxSize int64
	// MinFree is the free space, in bytes, kept on the data directory's
	// filesystem: fills and imports that would go below it evict first, and
	// are refused if nothing can be evicted. The index's own headroom is
	// always kept free on top of the configured value. Default 0.
	MinFree int64
	// Pins are patterns of images never evicted
	// ("docker.io/library/golang:*"). Default none.
	Pins []string
	// OrphanGrace is how long a blob no manifest references is kept
	// (a manifest may be on its way). Default 1h.
	OrphanGrace time.Duration
	// Housekeeping is how often the disk is checked and the bound
	// enforced; SweepEvery how often orphans are swept and badger's value
	// log collected. Defaults 10s and 10m; a negative Housekeeping stops
	// the background work (tests drive GC themselves).
	Housekeeping time.Duration
	SweepEvery   time.Duration
	// Now is the clock of access times and grace periods. Default time.Now.
	Now func() time.Time
	// Metrics registers the store's metrics. Default: not registered.
	Metrics prometheus.Registerer
}

// Store is the on-disk cache. It is safe for concurrent use; one process
// owns a data directory at a time (badger locks it).
type Store struct {
	dir    string
	tier   *local.Tier // where blob files are written, read and deleted
	opts   Options
	log    *slog.Logger
	db     *badger.DB
	hotMan *lru.Cache[v1.Hash, *Manifest]
	hotTag *lru.Cache[string, Tag]
	// hotLink remembers links found, so a warm request reads no index.
	// An eviction that removes links purges it.
	hotLink *lru.Cache[string, struct{}]
	fills   fillSet
	files   *blobFiles
	access  *accessLog
	use     usage
	gate    indexGate
	held    heldTags
	// eviction is the one eviction of the store: its passes, and their
	// policy (eviction.order).
	eviction eviction
	metrics  *storeMetrics
	now      func() time.Time
	stop     chan struct{}
	kick     chan struct{}
	wg       sync.WaitGroup
	closed   sync.Once
	cerr     error

	// graph is the image graph in memory; graphReads counts its reads
	// from the index (one at start-up; verify reads its own).
	graph      liveGraph
	graphReads atomic.Int64
}

// Open opens (creating if needed) the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	opts = withDefaults(opts)
	tier, err := local.New(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "index"), 0o750); err != nil {
		return nil, fmt.Errorf("create index: %w", err)
	}
	if err := clearTemp(tier.TempDir()); err != nil {
		return nil, err
	}
	s := &Store{dir: opts.Dir, tier: tier, opts: opts, log: opts.Logger, now: opts.Now,
		stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	s.metrics = newStoreMetrics(opts.Metrics, opts.MaxSize)
	// Without a bound, the filesystem is the bound badger is sized for.
	bound := opts.MaxSize
	if d, err := statDisk(opts.Dir); err == nil && (bound <= 0 || d.Total < bound) {
		bound = d.Total
	}
	memtable, vlog := badgerSizes(bound)
	s.gate = indexGate{dir: filepath.Join(opts.Dir, "index"), reserve: filepath.Join(opts.Dir, "index.reserve"),
		log: opts.Logger, headroom: indexHeadroom(memtable, vlog), size: 2 * memtable, refused: s.metrics.idxRefuse.Inc}
	if err := s.openIndex(memtable, vlog); err != nil {
		return nil, err
	}
	s.hotMan, _ = lru.New[v1.Hash, *Manifest](opts.HotEntries)
	s.hotTag, _ = lru.New[string, Tag](opts.HotEntries)
	s.hotLink, _ = lru.New[string, struct{}](opts.HotEntries * 4)
	s.fills.m = map[v1.Hash]*Fill{}
	s.fills.failed = newFailures(opts.FillRetryBackoff)
	s.files = newBlobFiles(opts.OpenBlobs)
	s.access = newAccessLog(s)
	s.use.scanned = make(chan struct{})
	s.graph.loaded, s.graph.patterns = make(chan struct{}), s.pinPatterns
	s.startScan()
	s.wg.Add(1)
	go s.loadLive()
	if opts.Housekeeping > 0 {
		s.wg.Add(1)
		go s.maintain()
	}
	return s, nil
}

// openIndex opens badger. When the disk is too full for badger to start
// (it creates and maps its files at open), the reserve file is given up
// first.
func (s *Store) openIndex(memtable, vlog int64) error {
	dir := filepath.Join(s.dir, "index")
	if d, err := statDisk(s.dir); err == nil && d.Free < s.gate.headroom {
		os.Remove(s.gate.reserve)
	}
	db, err := badger.Open(badgerOptions(dir, s.log, memtable, vlog))
	if err != nil {
		return fmt.Errorf("open index in %s: %w", s.dir, err)
	}
	s.db = db
	if _, err := os.Stat(s.gate.reserve); err != nil {
		if err := s.gate.makeReserve(); err != nil {
			s.gate.enterReadOnly(0)
		}
	}
	s.gate.check()
	return nil
}

func withDefaults(o Options) Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FillTimeout <= 0 {
		o.FillTimeout = 30 * time.Minute
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 60 * time.Second
	}
	if o.HotEntries <= 0 {
		o.HotEntries = 4096
	}
	if o.FillRetryBackoff <= 0 {
		o.FillRetryBackoff = time.Second
	}
	if o.OpenBlobs <= 0 {
		o.OpenBlobs = 256
	}
	if o.OrphanGrace <= 0 {
		o.OrphanGrace = time.Hour
	}
	if o.Housekeeping == 0 {
		o.Housekeeping = 10 * time.Second
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// badgerOptions keep badger's memory small: the index holds metadata only,
// and a mirror must stay flat in memory while it streams gigabytes. Its
// files are sized for the bound (badgerSizes). Values up to the largest
// a batch allows are kept in the LSM tree, so the value log (another
// mapped file) is rarely written.
func badgerOptions(dir string, log *slog.Logger, memtable, vlog int64) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		WithMemTableSize(memtable).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(memtable / 4).
		WithBaseLevelSize(4 * memtable).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(vlog).
		WithValueThreshold(min(1<<20, memtable*15/100/4)).
		WithNumCompactors(2)
}

// clearTemp removes fills a previous process left unfinished.
func clearTemp(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read temp dir: %w", err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove stale temp file: %w", err)
		}
	}
	return nil
}

// Close waits for running fills, flushes access times and closes the index.
// Closing twice is harmless.
func (s *Store) Close() error {
	s.closed.Do(func() {
		close(s.stop)
		s.fills.closeAll()
		s.wg.Wait()
		if s.gate.writable() {
			s.writeHeldTags()
		}
		s.files.closeAll()
		s.access.close()
		s.cerr = s.db.Close()
	})
	return s.cerr
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) blobPath(h v1.Hash) string { return s.tier.Path(h) }

// OpenBlob opens a committed blob. The caller closes the file. A committed
// blob's bytes were verified against its digest before it was renamed into
// place, so its existence is the proof of completeness.
func (s *Store) OpenBlob(h v1.Hash) (*os.File, int64, error) {
	f, size, err := s.PeekBlob(h)
	if err == nil {
		s.access.touch(h)
	}
	return f, size, err
}

// PeekBlob is OpenBlob without recording an access.
func (s *Store) PeekBlob(h v1.Hash) (*os.File, int64, error) {
	rc, size, err := s.tier.Open(context.Background(), h, 0)
	if errors.Is(err, blobs.ErrNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return rc.(*os.File), size, nil // the local tier's reader is the file
}

// HasBlob reports whether the blob is committed.
func (s *Store) HasBlob(h v1.Hash) bool {
	_, err := os.Stat(s.blobPath(h))
	return err == nil
}

type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any)   { l.log.Error("index: " + fmt.Sprintf(f, a...)) }
func (l badgerLogger) Warningf(f string, a ...any) { l.log.Warn("index: " + fmt.Sprintf(f, a...)) }
func (l badgerLogger) Infof(string, ...any)        {}
func (l badgerLogger) Debugf(string, ...any)       {}
