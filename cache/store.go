// Package cache is pullcache's content-addressed store: blobs (layers,
// configs and manifests) as files named by digest, written once after their
// bytes were verified; a badger index of manifests, tags, repository links
// and access times; an in-memory LRU of hot manifests and tags; and fills,
// the upstream downloads that any number of readers follow while they grow.
//
// It knows nothing of HTTP or of upstream registries: a fill is handed a
// function that opens the bytes.
package cache

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	lru "github.com/hashicorp/golang-lru/v2"
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
}

// Store is the on-disk cache. It is safe for concurrent use; one process
// owns a data directory at a time (badger locks it).
type Store struct {
	dir    string
	opts   Options
	log    *slog.Logger
	db     *badger.DB
	hotMan *lru.Cache[v1.Hash, *Manifest]
	hotTag *lru.Cache[string, Tag]
	// hotLink remembers links found, so a warm request reads no index.
	// Links are never removed while the store is open, so a hit stays true.
	hotLink *lru.Cache[string, struct{}]
	fills   fillSet
	files   *blobFiles
	access  *accessLog
	wg      sync.WaitGroup
	closed  sync.Once
	cerr    error
}

// Open opens (creating if needed) the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	opts = withDefaults(opts)
	for _, d := range []string{"blobs", "tmp", "index"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := clearTemp(filepath.Join(opts.Dir, "tmp")); err != nil {
		return nil, err
	}
	db, err := badger.Open(badgerOptions(filepath.Join(opts.Dir, "index"), opts.Logger))
	if err != nil {
		return nil, fmt.Errorf("open index in %s: %w", opts.Dir, err)
	}
	s := &Store{dir: opts.Dir, opts: opts, log: opts.Logger, db: db}
	s.hotMan, _ = lru.New[v1.Hash, *Manifest](opts.HotEntries)
	s.hotTag, _ = lru.New[string, Tag](opts.HotEntries)
	s.hotLink, _ = lru.New[string, struct{}](opts.HotEntries * 4)
	s.fills.m = map[v1.Hash]*Fill{}
	s.fills.failed = newFailures(opts.FillRetryBackoff)
	s.files = newBlobFiles(opts.OpenBlobs)
	s.access = newAccessLog(db, opts.Logger)
	return s, nil
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
	return o
}

// badgerOptions keep badger's memory small: the index holds metadata only,
// and a mirror must stay flat in memory while it streams gigabytes.
func badgerOptions(dir string, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(32 << 20).
		WithValueThreshold(4 << 10).
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
		s.fills.closeAll()
		s.wg.Wait()
		s.files.closeAll()
		s.access.close()
		s.cerr = s.db.Close()
	})
	return s.cerr
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) blobPath(h v1.Hash) string {
	prefix := h.Hex
	if len(prefix) > 2 {
		prefix = prefix[:2]
	}
	return filepath.Join(s.dir, "blobs", h.Algorithm, prefix, h.Hex)
}

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
	f, err := os.Open(s.blobPath(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
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
