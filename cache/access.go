package cache

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// accessLog collects last-access times in memory and writes them to the
// index in batches, so that serving a warm blob costs no index write.
type accessLog struct {
	s    *Store
	mu   sync.Mutex
	seen map[v1.Hash]int64
	stop chan struct{}
	done chan struct{}
}

const accessFlushEvery = 30 * time.Second

func newAccessLog(s *Store) *accessLog {
	a := &accessLog{s: s, seen: map[v1.Hash]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go a.loop()
	return a
}

func (a *accessLog) touch(h v1.Hash) {
	// Milliseconds: a client pulls several images a second, and eviction
	// must tell which came last.
	now := a.s.now().UnixMilli()
	a.mu.Lock()
	a.seen[h] = now
	a.mu.Unlock()
}

func (a *accessLog) loop() {
	defer close(a.done)
	t := time.NewTicker(accessFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.flush()
		case <-a.stop:
			a.flush()
			return
		}
	}
}

func (a *accessLog) flush() {
	a.mu.Lock()
	seen := a.seen
	a.seen = map[v1.Hash]int64{}
	a.mu.Unlock()
	if len(seen) == 0 {
		return
	}
	if err := a.s.gate.allow(); err != nil {
		a.keep(seen) // written once the disk has room again
		return
	}
	wb := a.s.db.NewWriteBatch()
	defer wb.Cancel()
	for h, at := range seen {
		v := binary.BigEndian.AppendUint64(nil, uint64(at))
		if err := wb.Set(accessKey(h), v); err != nil {
			a.s.log.Warn("record access times", "err", err)
			return
		}
	}
	if err := wb.Flush(); err != nil {
		a.s.log.Warn("record access times", "err", err)
		return
	}
	a.s.graph.change(func(g *graph) {
		for h, at := range seen {
			g.setLast(h, at)
		}
	})
}

// keep puts back access times that could not be written, unless newer
// ones were recorded meanwhile.
func (a *accessLog) keep(seen map[v1.Hash]int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for h, at := range seen {
		if a.seen[h] < at {
			a.seen[h] = at
		}
	}
}

// LastAccess returns when the blob or manifest was last served, as recorded.
func (s *Store) LastAccess(h v1.Hash) (time.Time, bool) {
	s.access.flush()
	var at time.Time
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(accessKey(h))
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			at = time.UnixMilli(accessMillis(b))
			return nil
		})
	})
	return at, err == nil
}

func (a *accessLog) close() {
	close(a.stop)
	<-a.done
}

// accessMillis reads an access record: milliseconds since the epoch.
// Records written before they were kept in milliseconds hold seconds,
// which are told apart by their size (seconds stay below 10^11 until
// the year 5138; milliseconds are above it since 1973).
func accessMillis(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	v := int64(binary.BigEndian.Uint64(b))
	if v < 1e11 {
		v *= 1000
	}
	return v
}
