package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// fileKey records a committed blob file: its allocated bytes and when it
// was committed. The sum of these records is the blobs' share of the
// bound, kept as a running total so start-up never stats every blob.
//
//	f:<digest>  16 bytes: allocated bytes, commit time (unix seconds)
func fileKey(h v1.Hash) []byte { return []byte("f:" + h.String()) }

type fileRecord struct {
	alloc     int64
	committed int64
}

func (r fileRecord) bytes() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(r.alloc))
	return binary.BigEndian.AppendUint64(b, uint64(r.committed))
}

func parseFileRecord(b []byte) fileRecord {
	if len(b) != 16 {
		return fileRecord{}
	}
	return fileRecord{alloc: int64(binary.BigEndian.Uint64(b)), committed: int64(binary.BigEndian.Uint64(b[8:]))}
}

// ErrNoSpace says a write was refused because it would take the cache
// past its size bound or the filesystem below its free-space floor, and
// eviction could not make room.
var ErrNoSpace = errors.New("the cache is out of space")

// usage is what the cache occupies, counted as allocated blocks (what the
// filesystem actually spends), not apparent sizes: badger's memtables and
// value log are sparse files, and a blob file rounds up to whole blocks.
type usage struct {
	// blobs is the sum of the f: records: committed blob files.
	blobs atomic.Int64
	// reserved is admitted for writes not yet committed (fills, imports).
	reserved atomic.Int64
	// scanned is closed once the start-up scan added the records found in
	// the index to blobs and reconciled them with the files.
	scanned chan struct{}
	// admit serialises admission, so that concurrent fills do not all see
	// the same room.
	admit sync.Mutex
}

// allocated is the space a file occupies on disk.
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

// dirAllocated sums the allocated size of every file under dir.
func dirAllocated(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += allocated(fi)
		}
		return nil
	})
	return n
}

// diskSpace is the filesystem holding the data directory.
type diskSpace struct {
	Free  int64 // bytes available to this process
	Total int64
}

func statDisk(dir string) (diskSpace, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return diskSpace{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return diskSpace{Free: int64(st.Bavail) * st.Bsize, Total: int64(st.Blocks) * st.Bsize}, nil
}

// Usage is what the cache occupies and may occupy, in bytes.
type Usage struct {
	// Bound is the size bound (0: none, only MinFree limits the cache).
	Bound int64 `json:"bound"`
	// MinFree is the free space kept on the filesystem.
	MinFree int64 `json:"min_free"`
	// Blobs are committed blob files (layers, configs, manifests).
	Blobs int64 `json:"blobs"`
	// Index is the badger index, its reserve file included.
	Index int64 `json:"index"`
	// Tmp are fills in progress and archives being imported.
	Tmp int64 `json:"tmp"`
	// Used is Blobs + Index + Tmp: what counts toward Bound.
	Used int64 `json:"used"`
	// Free and Total describe the filesystem.
	Free  int64 `json:"free"`
	Total int64 `json:"total"`
	// Ready is false until the start-up scan has counted every blob.
	Ready bool `json:"ready"`
	// Loading is true while the image graph is read at start-up (see
	// Store.Loading): listings and eviction wait for it.
	Loading bool `json:"loading,omitempty"`
}

// Usage measures what the cache occupies now.
func (s *Store) Usage() Usage {
	u := Usage{Bound: s.opts.MaxSize, MinFree: s.opts.MinFree, Blobs: s.use.blobs.Load()}
	u.Index = dirAllocated(filepath.Join(s.dir, "index")) + s.gate.reserveAllocated()
	u.Tmp = dirAllocated(filepath.Join(s.dir, "tmp")) + dirAllocated(filepath.Join(s.dir, "import-tmp"))
	u.Used = u.Blobs + u.Index + u.Tmp
	if d, err := statDisk(s.dir); err == nil {
		u.Free, u.Total = d.Free, d.Total
	}
	select {
	case <-s.use.scanned:
		u.Ready = true
	default:
	}
	u.Loading = s.Loading()
	return u
}

// recordBlob records the committed file of h in the index and the running
// total. It is idempotent: a record already there is replaced, and the
// total moves by the difference.
func (s *Store) recordBlob(h v1.Hash) error {
	fi, err := os.Stat(s.blobPath(h))
	if err != nil {
		return err
	}
	rec := fileRecord{alloc: allocated(fi), committed: s.now().Unix()}
	var old fileRecord
	err = s.update(func(txn *badger.Txn) error {
		old, _, _ = fileRecordOf(txn, h)
		return txn.Set(fileKey(h), rec.bytes())
	})
	if err != nil {
		return err
	}
	s.graph.change(func(g *graph) { g.putFile(h, rec) })
	s.use.blobs.Add(rec.alloc - old.alloc)
	return nil
}

// fileRecordOf reads h's f: record; ok is false when it has none.
func fileRecordOf(txn *badger.Txn, h v1.Hash) (rec fileRecord, ok bool, err error) {
	item, err := txn.Get(fileKey(h))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fileRecord{}, false, nil
	}
	if err != nil {
		return fileRecord{}, false, err
	}
	_ = item.Value(func(b []byte) error { rec = parseFileRecord(b); return nil })
	return rec, true, nil
}

// unrecordBlobs removes the f: records of the digests and subtracts them
// from the total; the caller removes the files afterwards (a crash in
// between leaves files without records, which the next start records
// again or the sweep removes).
func (s *Store) unrecordBlobs(hs []v1.Hash) error {
	for len(hs) > 0 {
		n := min(len(hs), 500)
		var freed int64
		err := s.update(func(txn *badger.Txn) error {
			freed = 0
			for _, h := range hs[:n] {
				rec, ok, err := fileRecordOf(txn, h)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				freed += rec.alloc
				if err := txn.Delete(fileKey(h)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.graph.change(func(g *graph) {
			for _, h := range hs[:n] {
				g.deleteFile(h)
			}
		})
		s.use.blobs.Add(-freed)
		hs = hs[n:]
	}
	return nil
}

// reservation is room admitted for a write that has not committed yet.
type reservation struct {
	s    *Store
	n    int64
	once sync.Once
}

// release gives the room back (the write committed, and is now counted
// as a blob, or it failed).
func (r *reservation) release() {
	if r == nil {
		return
	}
	r.once.Do(func() { r.s.use.reserved.Add(-r.n) })
}

// exceedsBound reports whether n bytes are more than the size bound (never,
// without one).
func (s *Store) exceedsBound(n int64) bool { return s.opts.MaxSize > 0 && n > s.opts.MaxSize }

// reserve admits a write of n bytes: if it would take the cache past its
// bound or the filesystem below MinFree, an eviction pass runs first to
// make room; if there still is none, the write is refused with ErrNoSpace.
func (s *Store) reserve(n int64) (*reservation, error) {
	n = roundBlock(max(n, 0))
	if s.exceedsBound(n) {
		s.metrics.refused.Inc()
		return nil, fmt.Errorf("%w: %d bytes is more than the whole bound of %d", ErrNoSpace, n, s.opts.MaxSize)
	}
	<-s.use.scanned
	s.use.admit.Lock()
	defer s.use.admit.Unlock()
	if short := s.shortfall(n); short > 0 && !s.eviction.futile.skip(s.use.blobs.Load()) {
		// A pass that just found nothing to evict is not repeated for
		// every cold request until the cache changed.
		rep, err := s.evict(evictRequest{need: short + s.lowWaterSlack()})
		if err != nil {
			s.log.Warn("eviction to make room failed", "err", err)
		}
		s.eviction.futile.record(rep.Freed == 0, s.use.blobs.Load())
		if short := s.shortfall(n); short > 0 {
			s.metrics.refused.Inc()
			return nil, fmt.Errorf("%w: %d more bytes needed and nothing more can be evicted (pinned or in use)", ErrNoSpace, short)
		}
	}
	s.use.reserved.Add(n)
	return &reservation{s: s, n: n}, nil
}

// EnsureRoom checks that n more bytes fit (evicting if needed) without
// reserving them: imports call it before unpacking an archive.
func (s *Store) EnsureRoom(n int64) error {
	r, err := s.reserve(n)
	r.release()
	return err
}

func roundBlock(n int64) int64 { return (n + 4095) &^ 4095 }

// shortfall is how many bytes must be freed before n more fit: under the
// bound (counting what is reserved) and above MinFree on the filesystem.
func (s *Store) shortfall(n int64) int64 {
	var short int64
	reserved := s.use.reserved.Load()
	if s.opts.MaxSize > 0 {
		u := s.Usage()
		// Fills in progress are counted by their reservation, not by the
		// part of them already in tmp/.
		used := u.Blobs + u.Index + dirAllocated(filepath.Join(s.dir, "import-tmp")) + reserved
		short = max(short, used+n-s.opts.MaxSize)
	}
	if d, err := statDisk(s.dir); err == nil {
		pending := max(reserved-dirAllocated(filepath.Join(s.dir, "tmp")), 0)
		short = max(short, s.minFree()-(d.Free-pending-n))
	}
	return short
}

// minFree is the free space blobs must leave: MinFree, and never less
// than the index needs (its headroom and reserve).
func (s *Store) minFree() int64 { return max(s.opts.MinFree, s.gate.floor()) }

// lowWaterSlack is what an eviction pass frees beyond what is needed, so
// that passes are not run for every fill: down to 90% of the bound.
func (s *Store) lowWaterSlack() int64 {
	if s.opts.MaxSize > 0 {
		return s.opts.MaxSize / 10
	}
	return s.minFree() / 10
}

// overBound is how much must be freed to get back to the low-water mark,
// or 0 when the cache is inside its bound and above MinFree.
func (s *Store) overBound() int64 {
	if short := s.shortfall(0); short > 0 {
		return short + s.lowWaterSlack()
	}
	return 0
}

// noSpace marks an error of a full filesystem (or quota) as ErrNoSpace.
func noSpace(err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// DiskSpace reports the free and total bytes of the filesystem holding dir.
func DiskSpace(dir string) (free, total int64, err error) {
	d, err := statDisk(dir)
	return d.Free, d.Total, err
}
