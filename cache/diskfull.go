package cache

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// A full disk must never kill the process. badger writes its memtables
// (the .mem write-ahead logs), value log and tables through memory
// mappings of files it creates sparse (ftruncate, then mmap): a store into
// a page the filesystem cannot back is a SIGBUS, not an error. So:
//
//   - badger's files are sized for the bound (badgerOptions), and the
//     sparse ones are preallocated (fallocate) as soon as they are seen;
//   - every index write of ours passes the gate: with less than the
//     index's headroom free, it is refused with ErrIndexReadOnly (reads go
//     on) instead of being handed to badger;
//   - a reserve file holds room the index can always write into: it is
//     released when the gate closes, so the flushes, compactions and the
//     final flush at Close that badger does on its own find space;
//   - blobs are admitted only while they leave the headroom and the reserve
//     free (reserve, usage.go), so the cache itself never eats the index's
//     room; only another process filling the disk can close the gate.

// ErrIndexReadOnly says an index write was refused because the disk is too
// full to write the index safely.
var ErrIndexReadOnly = errors.New("the index is read-only: the disk is too full to write it safely")

// indexGate decides whether the index may be written.
type indexGate struct {
	dir      string // the index directory
	reserve  string // the reserve file
	log      *slog.Logger
	headroom int64 // free bytes the index needs to write safely
	size     int64 // size of the reserve file
	readOnly atomic.Bool
	refused  func()
	mu       sync.Mutex
}

// floor is the free space blobs must leave: the index's headroom and room
// to recreate the reserve.
func (g *indexGate) floor() int64 { return g.headroom + g.size }

// allow is called before every index write.
func (g *indexGate) allow() error {
	if g.writable() {
		return nil
	}
	g.refused()
	return ErrIndexReadOnly
}

// writable reports whether the index may be written now, closing or
// reopening the gate as the free space says.
func (g *indexGate) writable() bool {
	if !g.readOnly.Load() {
		d, err := statDisk(g.dir)
		if err != nil || d.Free >= g.headroom {
			return true
		}
		g.enterReadOnly(d.Free)
	} else if g.check(); !g.readOnly.Load() {
		return true
	}
	return false
}

// enterReadOnly closes the gate and releases the reserve.
func (g *indexGate) enterReadOnly(free int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closeLocked(free)
}

func (g *indexGate) closeLocked(free int64) {
	if g.readOnly.Swap(true) {
		return
	}
	os.Remove(g.reserve)
	g.log.Error("disk almost full: the index is read-only; cached content is still served, nothing new is cached until space is freed",
		"free", free, "needed", g.headroom)
}

// check preallocates badger's sparse files and reopens the gate once
// there is room again. It runs on every maintenance tick.
func (g *indexGate) check() {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, err := statDisk(g.dir)
	if err != nil {
		return
	}
	if g.readOnly.Load() {
		if d.Free < g.headroom+2*g.size {
			return
		}
		if err := g.makeReserve(); err != nil {
			return
		}
		g.readOnly.Store(false)
		g.log.Info("disk space is back: the index is writable again", "free", d.Free)
	}
	if err := preallocate(g.dir); err != nil && errors.Is(err, unix.ENOSPC) {
		g.closeLocked(d.Free)
	}
}

// makeReserve creates the reserve file with its blocks allocated.
func (g *indexGate) makeReserve() error {
	if g.size <= 0 {
		return nil
	}
	f, err := os.OpenFile(g.reserve, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, g.size); err != nil {
		f.Close()
		os.Remove(g.reserve)
		return err
	}
	return nil
}

func (g *indexGate) reserveAllocated() int64 {
	fi, err := os.Stat(g.reserve)
	if err != nil {
		return 0
	}
	return allocated(fi)
}

// preallocate gives every sparse file in dir its blocks, so that badger's
// stores into its mappings of them cannot fault.
func preallocate(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || allocated(fi) >= fi.Size() {
			return nil
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return nil // badger removed it meanwhile
		}
		defer f.Close()
		return unix.Fallocate(int(f.Fd()), 0, 0, fi.Size())
	})
}

// update is db.Update behind the gate. A transaction that read a key
// another one wrote meanwhile (two confirmations of one tag) is retried.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	if err := s.gate.allow(); err != nil {
		return err
	}
	for try := 0; ; try++ {
		err := s.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) || try == 9 {
			return err
		}
	}
}

// badgerSizes sizes badger's files for the bound: a 160 MiB cache gets
// megabyte memtables, a large one the defaults below.
func badgerSizes(maxSize int64) (memtable, vlog int64) {
	memtable, vlog = 8<<20, 4<<20
	if maxSize > 0 {
		memtable = min(max(maxSize/64, 1<<20), memtable)
		vlog = min(max(maxSize/64, 1<<20), vlog)
	}
	return memtable, vlog
}

// indexHeadroom is the free space badger needs to go on writing: a new
// memtable log, the flush of the last one to a table, a level-0
// compaction, and a new value log file.
func indexHeadroom(memtable, vlog int64) int64 { return 6*memtable + 2*vlog }
